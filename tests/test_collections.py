"""Living collections (issue #27, items 1, 2, 9 and 10): the source in collection mode mirrors one
folder or bucket prefix edited in place. Each run of a day snapshots it: search then returns exactly
what it holds (new documents, changed ones with their new text only, none that were deleted), only
changed files are opened and only their rows written; a past day, a range of days, a missing or empty
collection, a mass deletion and a listing that fails half-way are refused, and nothing is lost."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from dagster import materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.errors import ConfigError, DocvecError
from pipeline.ingest.collection import CollectionOptions
from pipeline.ingest.landing import LocalLanding
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions
from pipeline.ops import delete_documents, forget, retention_run, store_checks
from pipeline.query import search
from pipeline.storage import connections
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from tests.support.databases import fresh_database
from tests.support.engine_runs import never, run_days, write_files
from tests.support.s3_server import REGION, S3Server, s3_server

BUCKET = "docvec-collections"
ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]
DAY1, DAY2, DAY3 = dt.date(2026, 5, 4), dt.date(2026, 5, 5), dt.date(2026, 5, 6)
HANDBOOK = {
    "onboarding.md": "# Onboarding\n\nNew staff collect their grelvash badge from reception on day one.",
    "expenses.md": "# Expenses\n\nTravel claims need the ostrivane form signed by a manager.",
    "holidays.md": "# Holidays\n\nThe office closes for the pendrakil festival each spring.",
    "it/laptops.md": "# Laptops\n\nLaptops are reimaged with the quembrith tool every year.",
}


@pytest.fixture
def isolated(migrated, embedder, request):
    """A database of the test's own: a collection's snapshot is compared with everything stored."""
    return fresh_database(migrated, embedder.info.dim, f"docvec_coll_{request.node.name[5:40].lower()}")


def rewrite_same_bytes(path: Path) -> None:
    """The file written again with the same bytes (a new inode and times: cp, rsync without -a)."""
    copy = path.with_name(f".{path.name}.copy")
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)


def found(conn: psycopg.Connection, embedder, word: str, mode: str = "text") -> list[tuple[str, str]]:
    return [(h.doc_id, h.text) for h in search.search(conn, embedder, word, k=5, mode=mode)]


def rows_on(conn: psycopg.Connection, day: dt.date) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT doc_id FROM chunks WHERE ingest_date = %s ORDER BY 1", (day,))]


def test_a_local_collection_is_mirrored_day_by_day(isolated, embedder, chunking_config, tmp_path) -> None:
    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    landing = LocalLanding(root, collection=True)
    with connections.connect(isolated) as conn:
        report, [load] = run_days(conn, landing, [DAY1], embedder, chunking_config)
        changes = report.plans[DAY1.isoformat()].changes
        assert changes is not None and sorted(changes.added) == sorted(HANDBOOK) and not changes.deleted
        assert load.documents == 4 and rows_on(conn, DAY1) == sorted(HANDBOOK)
        assert found(conn, embedder, "grelvash")[0][0] == "onboarding.md", "ids are paths below the collection"

        # Day 2: one edited, one deleted, one added, one written again with the same bytes, one untouched.
        write_files(root, {"expenses.md": "# Expenses\n\nTravel claims now need the zintaroll portal instead.",
                     "security.md": "# Security\n\nVisitors sign the morvantic register at the gate."})
        (root / "holidays.md").unlink()
        rewrite_same_bytes(root / "onboarding.md")
        report, [load] = run_days(conn, landing, [DAY2], embedder, chunking_config)
        plan = report.plans[DAY2.isoformat()]
        assert plan.changes is not None
        assert (plan.changes.added, plan.changes.changed, plan.changes.deleted) == (
            ("security.md",), ("expenses.md",), ("holidays.md",))
        assert plan.changes.unchanged == 2 and plan.changes.restamped == 1
        assert plan.files_read == 3 and plan.files_parsed == 2, "laptops.md never opened; onboarding.md only hashed"
        metadata = report.metadata()
        assert (metadata["documents_added"], metadata["documents_changed"], metadata["documents_deleted"],
                metadata["documents_unchanged"]) == (1, 1, 1, 2)
        # Rows are written for what changed only: the day holds the new versions, nothing else.
        assert rows_on(conn, DAY2) == ["expenses.md", "security.md"] and load.deleted == 1

        assert found(conn, embedder, "pendrakil") == [], "a deleted document is gone from search"
        assert found(conn, embedder, "ostrivane") == [], "a changed document's old text is gone"
        assert [d for d, _ in found(conn, embedder, "zintaroll")] == ["expenses.md"]
        assert [d for d, _ in found(conn, embedder, "morvantic")] == ["security.md"]
        for word, doc in (("grelvash", "onboarding.md"), ("quembrith", "it/laptops.md")):
            assert [d for d, _ in found(conn, embedder, word)] == [doc], "unchanged documents stay, however old"
        vector = {h.doc_id for h in search.search(conn, embedder, "office festival closure in spring", k=10,
                                                  mode="vector")}
        assert "holidays.md" not in vector and vector <= {*HANDBOOK, "security.md"} - {"holidays.md"}

        # The same snapshot again: nothing opened, nothing rewritten, the model never loaded.
        report, [load] = run_days(conn, landing, [DAY2], embedder, chunking_config, model=never)
        assert report.plans[DAY2.isoformat()].files_read == 0 and load.unchanged

        # Edited again the same day: the rerun takes a new snapshot; the day's other new version is kept.
        write_files(root, {"security.md": "# Security\n\nVisitors now sign the tobrunel register at the gate."})
        report, [load] = run_days(conn, landing, [DAY2], embedder, chunking_config)
        plan = report.plans[DAY2.isoformat()]
        assert [d.doc_id for d in plan.read.documents] == ["security.md"]
        assert [k.doc_id for k in plan.read.kept] == ["expenses.md"] and load.kept_chunks >= 1
        assert found(conn, embedder, "morvantic") == [] and [d for d, _ in found(conn, embedder, "tobrunel")] == [
            "security.md"]

        # A deleted document that comes back is a new version, found again.
        write_files(root, {"holidays.md": HANDBOOK["holidays.md"]})
        report, _ = run_days(conn, landing, [DAY3], embedder, chunking_config)
        assert report.plans[DAY3.isoformat()].changes.added == ("holidays.md",)
        assert [d for d, _ in found(conn, embedder, "pendrakil")] == ["holidays.md"]


def test_past_days_ranges_and_missing_or_empty_collections_are_refused(isolated, embedder, chunking_config,
                                                                        tmp_path) -> None:
    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    landing = LocalLanding(root, collection=True)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY2], embedder, chunking_config)
        stored = conn.execute("SELECT count(*) FROM documents").fetchone()[0]

        with pytest.raises(ConfigError, match=rf"{DAY1} is before {DAY2}.*backfill.*as_of={DAY1}"):
            run_days(conn, landing, [DAY1], embedder, chunking_config, model=never)
        with pytest.raises(ConfigError, match=r"one snapshot for one day.*2 days"):
            run_days(conn, landing, [DAY2, DAY3], embedder, chunking_config, model=never)

        for name in HANDBOOK:
            (root / name).unlink()
        with pytest.raises(ConfigError) as empty:
            run_days(conn, landing, [DAY3], embedder, chunking_config, model=never)
        assert f"collection {root} holds no files" in str(empty.value) and "4 stored documents" in str(empty.value)
        assert "docvec delete" in str(empty.value)

        gone = LocalLanding(tmp_path / "not-mounted", collection=True)
        with pytest.raises(ConfigError, match=rf"collection folder {tmp_path / 'not-mounted'} does not exist"):
            run_days(conn, gone, [DAY3], embedder, chunking_config, model=never)

        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == stored
        assert conn.execute("SELECT count(*) FROM document_deletions").fetchone()[0] == 0
        assert [d for d, _ in found(conn, embedder, "pendrakil")] == ["holidays.md"], "nothing was lost"


def test_a_snapshot_that_would_delete_most_of_the_collection_is_refused(isolated, embedder, chunking_config,
                                                                         tmp_path) -> None:
    root = tmp_path / "wiki"
    pages = {f"page-{n:02}.md": f"Wiki page {n} about the {word} procedure."
             for n, word in enumerate(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                       "india", "juliet", "kilo", "lima"])}
    write_files(root, pages)
    landing = LocalLanding(root, collection=True)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY1], embedder, chunking_config)
        for name in list(pages)[:7]:  # a half-synced mount: 7 of 12 missing
            (root / name).unlink()
        with pytest.raises(ConfigError, match=r"no longer lists 7 of its 12 stored documents \(58%.*max_deleted_share"):
            run_days(conn, landing, [DAY2], embedder, chunking_config, model=never)
        assert conn.execute("SELECT count(*) FROM document_deletions").fetchone()[0] == 0
        # Raised on purpose for one run, the deletions go through.
        report, _ = run_days(conn, landing, [DAY2], embedder, chunking_config,
                             snapshot=CollectionOptions(max_deleted_share=1.0))
        assert len(report.plans[DAY2.isoformat()].changes.deleted) == 7
        assert found(conn, embedder, "alpha") == [] and [d for d, _ in found(conn, embedder, "lima")] == ["page-11.md"]


def test_an_unreadable_file_keeps_its_stored_version(isolated, embedder, chunking_config, tmp_path) -> None:
    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    landing = LocalLanding(root, collection=True)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY1], embedder, chunking_config)
        (root / "holidays.md").write_bytes(b"\xff\xfe\x00broken \x00 bytes")  # not text any more
        report, _ = run_days(conn, landing, [DAY2], embedder, chunking_config)
        plan = report.plans[DAY2.isoformat()]
        assert [letter.source_uri for letter in plan.read.dead_letters] == ["holidays.md"]
        assert plan.changes is not None and plan.changes.deleted == ()
        assert [d for d, _ in found(conn, embedder, "pendrakil")] == ["holidays.md"], "the last good version stays"


# -- object storage, on the real S3 server -------------------------------------------------------------

@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def s3_options(s3: S3Server) -> StorageOptions:
    return StorageOptions(endpoint_url=s3.endpoint, region=REGION, key=s3.key, secret=s3.secret)


def test_a_bucket_prefix_is_mirrored_through_the_dagster_assets(s3, isolated, embedder, tmp_path) -> None:
    client = s3.client()
    for name, text in HANDBOOK.items():
        client.put_object(Bucket=BUCKET, Key=f"handbook/{name}", Body=text.encode())
    source = SourceResource(landing_dir=f"s3://{BUCKET}/handbook", mode="collection", endpoint_url=s3.endpoint,
                            region=REGION, access_key_id=s3.key, secret_access_key=s3.secret)

    def run(day: dt.date):
        resources = {"postgres": PostgresResource(database_url=isolated.database_url), "embedder": EmbedderResource(),
                     "retention_window": RetentionResource(as_of=day.isoformat()), "source": source,
                     "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches"))}
        return materialize(ASSETS, resources=resources, partition_key=day.isoformat(), raise_on_error=False)

    def read_metadata(result) -> dict[str, object]:
        return {k: v.value for k, v in result.asset_materializations_for_node("raw_documents")[0].metadata.items()}

    first = run(DAY1)
    assert first.success and read_metadata(first)["documents_added"] == 4
    client.put_object(Bucket=BUCKET, Key="handbook/expenses.md",
                      Body=b"# Expenses\n\nTravel claims now need the zintaroll portal instead.")
    client.delete_object(Bucket=BUCKET, Key="handbook/holidays.md")
    s3.log.reset()
    second = run(DAY2)
    assert second.success
    metadata = read_metadata(second)
    assert (metadata["documents_added"], metadata["documents_changed"], metadata["documents_deleted"],
            metadata["documents_unchanged"]) == (0, 1, 1, 2)
    assert s3.log.counts["object_get"] == 1, f"only the changed object is downloaded: {s3.log.counts}"
    with connections.connect(isolated) as conn:
        assert found(conn, embedder, "pendrakil") == [] and found(conn, embedder, "ostrivane") == []
        assert [d for d, _ in found(conn, embedder, "zintaroll")] == ["expenses.md"]
        assert [d for d, _ in found(conn, embedder, "quembrith")] == ["it/laptops.md"]

    # A prefix that does not exist is refused with its name, and loses nothing.
    missing = SourceResource(landing_dir=f"s3://{BUCKET}/no-such-prefix", mode="collection", endpoint_url=s3.endpoint,
                             region=REGION, access_key_id=s3.key, secret_access_key=s3.secret)
    resources = {"postgres": PostgresResource(database_url=isolated.database_url), "embedder": EmbedderResource(),
                 "retention_window": RetentionResource(as_of=DAY2.isoformat()), "source": missing,
                 "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches"))}
    wrong = materialize(ASSETS, resources=resources, partition_key=DAY2.isoformat(), raise_on_error=False)
    assert not wrong.success
    message = wrong.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert f"collection s3://{BUCKET}/no-such-prefix does not exist" in message, message
    with connections.connect(isolated) as conn:
        assert [d for d, _ in found(conn, embedder, "quembrith")] == ["it/laptops.md"]


def test_a_listing_that_fails_half_way_deletes_nothing(s3, isolated, embedder, chunking_config) -> None:
    """More than one listing page (S3 pages hold 1,000 keys): the second page fails. A partial listing
    read as the collection would delete every document on the pages never seen."""
    client = s3.client()
    first_page = {"a-first.md": "The ambrelith cellar key hangs by the door."}
    last_page = {"z-last.md": "The zorvintal boiler is serviced in October."}
    for name, text in {**first_page, **last_page}.items():
        client.put_object(Bucket=BUCKET, Key=f"big/{name}", Body=text.encode())
    for n in range(1000):  # hidden names: listed by the store, never documents
        client.put_object(Bucket=BUCKET, Key=f"big/m/.filler-{n:04}", Body=b"x")
    # One attempt of docvec's own (s3fs and botocore still retry each page): the test needs the failure, not the wait.
    landing = open_landing(f"s3://{BUCKET}/big", replace(s3_options(s3), retries=1), collection=True)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY1], embedder, chunking_config)
        assert [d for d, _ in found(conn, embedder, "zorvintal")] == ["z-last.md"]
        s3.log.fail_list_continuations = True
        try:
            with pytest.raises(DocvecError, match=rf"listing s3://{BUCKET}/big/ failed.*Nothing was read or deleted"):
                run_days(conn, landing, [DAY2], embedder, chunking_config, model=never)
        finally:
            s3.log.fail_list_continuations = False
        assert conn.execute("SELECT count(*) FROM document_deletions").fetchone()[0] == 0
        assert [d for d, _ in found(conn, embedder, "zorvintal")] == ["z-last.md"], "nothing was lost"
        report, _ = run_days(conn, landing, [DAY2], embedder, chunking_config, model=never)
        assert report.plans[DAY2.isoformat()].changes.deleted == (), "the full listing deletes nothing either"


def test_the_window_keeps_history_and_never_a_live_document(isolated, embedder, chunking_config, tmp_path) -> None:
    """Item 3: retention in collection mode purges versions superseded or deleted before the window's
    first day, keeps live documents however old, refuses an as-of before the window, and gives the
    space back (a thinned partition rebuilt, an emptied one dropped)."""
    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    landing = LocalLanding(root, collection=True)
    day4 = DAY3 + dt.timedelta(days=1)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY1], embedder, chunking_config)
        write_files(root, {"expenses.md": "# Expenses\n\nTravel claims now need the zintaroll portal instead."})
        (root / "holidays.md").unlink()
        run_days(conn, landing, [DAY2], embedder, chunking_config)

        before = store_checks.nothing_older_than_window(conn, DAY3, 2, collection=True)
        assert not before.passed and before.metadata["history_versions_left"] == 2
        report = retention_run.enforce_retention(conn, DAY3, 2, log=lambda _: None, collection=True)
        purge = report.purge
        assert (purge.horizon, purge.versions) == (DAY2, 2), "the old expenses.md and the deleted holidays.md"
        assert f"chunks_{DAY1:%Y%m%d}" in purge.compacted, "half of the first day's rows went: rebuilt compact"
        assert store_checks.nothing_older_than_window(conn, DAY3, 2, collection=True).passed
        for word in ("ostrivane", "pendrakil"):
            assert conn.execute("SELECT count(*) FROM chunks WHERE text LIKE %s", (f"%{word}%",)).fetchone()[0] == 0
        for word, doc in (("grelvash", "onboarding.md"), ("quembrith", "it/laptops.md"), ("zintaroll", "expenses.md")):
            assert [d for d, _ in found(conn, embedder, word)] == [doc], "live documents stay, however old"
        with pytest.raises(ConfigError, match=str(DAY2)):
            search.search(conn, embedder, "grelvash", k=5, mode="text", as_of=DAY1)
        assert [d for d, _ in search_as_of(conn, embedder, "grelvash", DAY2)] == ["onboarding.md"]
        again = retention_run.enforce_retention(conn, DAY3, 2, log=lambda _: None, collection=True).purge
        assert again.versions == 0 and again.compacted == [] and again.dropped == [], "rerunning is a no-op"

        # Every document of the first day superseded: once that is history, the day's partition goes.
        write_files(root, {"onboarding.md": "# Onboarding\n\nBadges now come from the welvorant desk.",
                     "it/laptops.md": "# Laptops\n\nLaptops are now reimaged with the dostrami tool."})
        run_days(conn, landing, [DAY3], embedder, chunking_config)
        purge = retention_run.enforce_retention(conn, day4, 2, log=lambda _: None, collection=True).purge
        assert purge.versions == 2 and purge.dropped == [f"chunks_{DAY1:%Y%m%d}"]
        assert conn.execute("SELECT count(*) FROM ingest_days WHERE ingest_date = %s", (DAY1,)).fetchone()[0] == 0
        assert sorted(d for d, _ in found(conn, embedder, "welvorant dostrami zintaroll")) == [
            "expenses.md", "it/laptops.md", "onboarding.md"]


def search_as_of(conn: psycopg.Connection, embedder, word: str, day: dt.date) -> list[tuple[str, str]]:
    return [(h.doc_id, h.text) for h in search.search(conn, embedder, word, k=5, mode="text", as_of=day)]


def test_the_sensor_requests_today_when_the_collection_changes(tmp_path) -> None:
    from dagster import DagsterInstance, build_sensor_context

    from schedules import landing_sensor

    today = dt.date(2026, 6, 30)
    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    resources = {"source": SourceResource(landing_dir=str(root), mode="collection"),
                 "retention_window": RetentionResource(as_of=today.isoformat())}
    with DagsterInstance.ephemeral() as instance:
        first = landing_sensor(build_sensor_context(instance=instance, resources=resources))
        assert [r.partition_key for r in first.run_requests] == [str(today)]
        unchanged = landing_sensor(build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
        assert list(unchanged.run_requests) == [], "nothing changed, nothing requested"
        (root / ".docvec-readers").write_text("hr/** group:hr\n")  # who may read: part of the listing too
        [readers] = landing_sensor(build_sensor_context(instance=instance, resources=resources,
                                                        cursor=first.cursor)).run_requests
        (root / "holidays.md").unlink()
        [request] = landing_sensor(build_sensor_context(instance=instance, resources=resources,
                                                        cursor=first.cursor)).run_requests
        assert request.partition_key == str(today) and request.run_key != first.run_requests[0].run_key
        assert len({first.run_requests[0].run_key, readers.run_key, request.run_key}) == 3
        gone = {"source": SourceResource(landing_dir=str(tmp_path / "unmounted"), mode="collection"),
                "retention_window": RetentionResource(as_of=today.isoformat())}
        skipped = landing_sensor(build_sensor_context(instance=instance, resources=gone, cursor=first.cursor))
        assert list(skipped.run_requests) == [] and skipped.skip_reason is not None
        assert "does not exist" in (skipped.skip_reason.skip_message or "")


def test_delete_and_forget_say_the_collection_still_holds_the_file(isolated, embedder, chunking_config,
                                                                   tmp_path) -> None:
    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    landing = LocalLanding(root, collection=True)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY1], embedder, chunking_config)
        deleted = delete_documents.delete(conn, ["holidays.md"], DAY1, landing)
        assert any(f"the collection {root} still holds it: a run of a later day loads it again" in line
                   for line in deleted.lines()), deleted.lines()
        assert found(conn, embedder, "pendrakil") == []
        run_days(conn, landing, [DAY2], embedder, chunking_config)
        assert [d for d, _ in found(conn, embedder, "pendrakil")] == ["holidays.md"], "the source holds it: back"

        report = forget.forget(conn, ["expenses.md"], landing=landing)
        assert report.still_in_landing == ["expenses.md"]
        assert any("still holds expenses.md" in line for line in report.lines()), report.lines()
        assert found(conn, embedder, "ostrivane") == []


def test_a_new_model_is_built_in_the_shadow_from_the_past_days_stored_chunks(isolated, embedder, chunking_config,
                                                                             tmp_path) -> None:
    """A collection's past days have no folders to read again: a new model's shadow build embeds their
    stored chunks (the same cuts, counted with its tokenizer), snapshots the latest day as usual, and
    search switches to it once every stored day is covered."""
    from pipeline.ingest.embedding import load_embedder
    from pipeline.storage import model_registry

    root = tmp_path / "handbook"
    write_files(root, HANDBOOK)
    landing = LocalLanding(root, collection=True)
    bare = load_embedder(contextual=False)  # its own revision: a new model to the store
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [DAY1], embedder, chunking_config)
        write_files(root, {"expenses.md": "# Expenses\n\nTravel claims now need the zintaroll portal instead."})
        (root / "holidays.md").unlink()
        run_days(conn, landing, [DAY2], embedder, chunking_config)
        served = model_registry.serving(conn)
        assert served is not None and served.revision == embedder.info.revision

        report, _ = run_days(conn, landing, [DAY1, DAY2], bare, chunking_config)
        restored, latest = report.plans[DAY1.isoformat()], report.plans[DAY2.isoformat()]
        assert restored.restored is not None and restored.files_read == 0, "a past day's files are never read"
        assert latest.restored is None
        switched = model_registry.serving(conn)
        assert switched is not None and switched.revision == bare.info.revision, "every stored day covered: switched"
        rows = dict(conn.execute("SELECT ingest_date, count(*) FROM chunks WHERE model_id = %s GROUP BY 1",
                                 (switched.id,)).fetchall())
        old = dict(conn.execute("SELECT ingest_date, count(*) FROM chunks WHERE model_id = %s GROUP BY 1",
                                (served.id,)).fetchall())
        assert rows == old, "the same cuts on every day, embedded by the new model"
        assert conn.execute("SELECT count(*) FROM chunks WHERE model_id = %s AND context <> ''",
                            (switched.id,)).fetchone()[0] == 0, "a bare model embeds chunks without headers"
        for mode in ("text", "vector", "hybrid"):
            hits = {h.doc_id: h.text for h in search.search(conn, bare, "travel claims form for expenses", k=10,
                                                              mode=mode)}
            assert "holidays.md" not in hits and "ostrivane" not in hits.get("expenses.md", ""), mode
        assert [d for d, _ in found(conn, bare, "zintaroll")] == ["expenses.md"]
        assert [d for d, _ in found(conn, bare, "quembrith")] == ["it/laptops.md"]

        again, _ = run_days(conn, landing, [DAY1, DAY2], bare, chunking_config, model=never)
        assert all(plan.unchanged for plan in again.plans.values()), "built once"
