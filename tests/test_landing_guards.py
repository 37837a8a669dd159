"""Guards on what a run reads as a day (issue #27, items 8, 6 and 9): a day folder that does not exist is
not an empty day (refused when the day holds stored documents, nothing to do when it holds none), a
landing that does not exist is named, and files landed again with the same bytes are recognised by
the hash of their bytes, or in S3 by their ETag, without being parsed."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from dagster import materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.errors import ConfigError
from pipeline.ingest.landing import LocalLanding
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions
from pipeline.ingest.planning import DayPlan
from pipeline.query import search
from pipeline.storage import connections
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from tests.support.databases import fresh_database
from tests.support.engine_runs import never, run_days
from tests.support.s3_server import REGION, S3Server, s3_server
from tests.support.sample import day_folder

BUCKET = "docvec-guards"
ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]
NOTES = {"tides.md": "The harbour tide table zyqorth is printed every Monday.",
         "ropes.md": "Mooring ropes vexhalin are checked before each storm.",
         "lamps.md": "The lighthouse lamp quintrel is cleaned at dawn."}
TODAY = {"orders.md": ("The canteen order form plovrisk is due by noon.", "plovrisk"),
         "badges.md": ("Visitor badges marvendal are returned at the gate.", "marvendal"),
         "keys.md": ("Spare office keys tessolune hang in the cabinet.", "tessolune")}


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def options(s3: S3Server) -> StorageOptions:
    return StorageOptions(endpoint_url=s3.endpoint, region=REGION, key=s3.key, secret=s3.secret)


def reland(folder: Path) -> None:
    """Every file written again with the same bytes (a new inode and times: cp -r, rsync without -a)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        copy = path.with_name(f".{path.name}.copy")
        copy.write_bytes(path.read_bytes())
        os.replace(copy, path)


# -- the listing: a missing day folder is not an empty one ----------------------------------------------

def test_a_local_day_folder_that_does_not_exist_is_told_from_an_empty_one(tmp_path) -> None:
    day, empty = dt.date(2026, 4, 1), dt.date(2026, 4, 2)
    (day_folder(tmp_path, day) / "a.md").write_text("A note.")
    day_folder(tmp_path, empty)
    landing = LocalLanding(tmp_path)
    assert landing.has_day(day) and landing.has_day(empty) and not landing.has_day(dt.date(2026, 4, 3))
    assert landing.files(empty) == [] and not landing.holds_undated_files()

    flat = tmp_path / "flat"
    (flat / "handbook").mkdir(parents=True)
    (flat / "handbook" / "intro.md").write_text("A handbook without day folders.")
    assert LocalLanding(flat).holds_undated_files() and not LocalLanding(flat).has_day(day)
    with pytest.raises(ConfigError, match=f"landing directory {tmp_path / 'nowhere'} does not exist"):
        LocalLanding(tmp_path / "nowhere").has_day(day)


def test_an_s3_day_prefix_that_does_not_exist_is_told_from_an_empty_one(s3) -> None:
    day = dt.date(2026, 4, 1)
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key=f"dated/{day}/a.md", Body=b"A note.")
    client.put_object(Bucket=BUCKET, Key="dated/2026-04-02/", Body=b"")  # a folder marker: an empty day
    client.put_object(Bucket=BUCKET, Key="dated/2026-04-03/.keep", Body=b"")  # a hidden file: an empty day too
    client.put_object(Bucket=BUCKET, Key="flat/handbook/intro.md", Body=b"A handbook without day folders.")
    dated = open_landing(f"s3://{BUCKET}/dated", options(s3))
    assert dated.has_day(day) and [f.rel for f in dated.files(day)] == ["a.md"]
    for empty in (dt.date(2026, 4, 2), dt.date(2026, 4, 3)):
        assert dated.files(empty) == [] and dated.has_day(empty), empty
    assert not dated.has_day(dt.date(2026, 4, 4)) and not dated.holds_undated_files()
    flat = open_landing(f"s3://{BUCKET}/flat", options(s3))
    assert flat.files(day) == [] and not flat.has_day(day) and flat.holds_undated_files()

    nowhere = open_landing(f"s3://{BUCKET}/no/such/prefix", options(s3))
    for attempt in (lambda: nowhere.has_day(day), nowhere.days):
        with pytest.raises(ConfigError, match=f"landing s3://{BUCKET}/no/such/prefix does not exist") as refused:
            attempt()
        assert "does not exist (" not in str(refused.value), "not mistaken for a missing bucket"


def test_an_s3_object_uploaded_again_with_the_same_bytes_keeps_its_etag(s3) -> None:
    client, key = s3.client(), "etag/2026-04-01/a.md"
    day = dt.date(2026, 4, 1)
    landing = open_landing(f"s3://{BUCKET}/etag", options(s3))
    client.put_object(Bucket=BUCKET, Key=key, Body=b"Same bytes.")
    [before] = landing.files(day)
    time.sleep(1.1)  # LastModified has a one-second resolution
    client.put_object(Bucket=BUCKET, Key=key, Body=b"Same bytes.")
    [synced] = landing.files(day)
    assert synced.stamp != before.stamp and landing.same_content(synced, before.stamp)
    client.put_object(Bucket=BUCKET, Key=key, Body=b"Other bytes")  # the same size, other content
    [edited] = landing.files(day)
    assert not landing.same_content(edited, before.stamp) and not landing.same_content(synced, None)


# -- planning: refused, nothing to do, emptied on purpose; re-landed files not parsed ---------------------

@pytest.fixture(scope="module")
def isolated(migrated, embedder):
    return fresh_database(migrated, embedder.info.dim, "docvec_landing_guards")


def test_a_missing_day_folder_never_wipes_a_stored_day(isolated, embedder, chunking_config, tmp_path) -> None:
    stored, quiet, emptied = dt.date(2026, 4, 10), dt.date(2026, 4, 11), dt.date(2026, 4, 12)
    for day in (stored, emptied):
        (day_folder(tmp_path, day) / "note.md").write_text(f"The ferry timetable for {day} is posted at the pier.")
    landing = LocalLanding(tmp_path)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [stored, emptied], embedder, chunking_config)

        (tmp_path / stored.isoformat()).rename(tmp_path / "moved-away")
        with pytest.raises(ConfigError) as refused:
            run_days(conn, landing, [stored], embedder, chunking_config)
        message = str(refused.value)
        assert f"{landing.url}/{stored}/ does not exist" in message and f"{landing.url}/YYYY-MM-DD/" in message
        assert "empty folder" in message and "collection" not in message, "the landing still has day folders"
        assert conn.execute("SELECT count(*) FROM documents WHERE ingest_date = %s", (stored,)).fetchone()[0] == 1

        # A day nothing landed on and nothing is stored for (a schedule tick): nothing to do, no failure.
        report, loads = run_days(conn, landing, [quiet], embedder, chunking_config, model=never)
        assert report.plans == {} and report.absent == (quiet.isoformat(),) and loads == []
        assert report.metadata()["days_absent"] == 1 and "nothing to do" in report.lines()[0]
        assert conn.execute("SELECT count(*) FROM ingest_days WHERE ingest_date = %s", (quiet,)).fetchone()[0] == 0

        # An existing empty folder stays the explicit way to empty a day.
        (tmp_path / emptied.isoformat() / "note.md").unlink()
        _, [load] = run_days(conn, landing, [emptied], embedder, chunking_config)
        assert load.documents == 0
        assert conn.execute("SELECT count(*) FROM documents WHERE ingest_date = %s", (emptied,)).fetchone()[0] == 0


def test_files_landed_again_with_the_same_bytes_are_not_parsed(isolated, embedder, chunking_config,
                                                                tmp_path) -> None:
    day = dt.date(2026, 4, 20)
    folder = day_folder(tmp_path, day)
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    landing = LocalLanding(tmp_path)
    with connections.connect(isolated) as conn:
        run_days(conn, landing, [day], embedder, chunking_config)

        reland(folder)
        report, [load] = run_days(conn, landing, [day], embedder, chunking_config, model=never)
        plan: DayPlan = report.plans[day.isoformat()]
        assert plan.unchanged and load.unchanged, "the same fingerprint: nothing rewritten, no model loaded"
        assert plan.files_read == 3 and plan.files_parsed == 0 and plan.read.documents == []
        assert sorted(k.doc_id for k in plan.read.kept) == sorted(NOTES) and report.metadata()["files_parsed"] == 0
        again, _ = run_days(conn, landing, [day], embedder, chunking_config, model=never)
        assert again.plans[day.isoformat()].files_read == 0, "the new listing was recorded"

        # One file edited among re-landed ones: only it is parsed; the others keep their chunks.
        reland(folder)
        (folder / "tides.md").write_text("The harbour tide table zyqorth is now printed every Friday.")
        report, [load] = run_days(conn, landing, [day], embedder, chunking_config)
        plan = report.plans[day.isoformat()]
        assert not plan.unchanged and plan.files_parsed == 1 and [d.doc_id for d in plan.read.documents] == ["tides.md"]
        assert load.kept_chunks == 2 and load.documents == 3
        hits = search.search(conn, embedder, "when is the zyqorth tide table printed", k=5)
        assert any("Friday" in h.text for h in hits) and not any("Monday" in h.text for h in hits)


# -- the scenario, through the Dagster assets on the real S3 server --------------------------------

def test_a_prefix_without_day_folders_is_refused_and_today_stays_searchable(s3, isolated, embedder,
                                                                             tmp_path) -> None:
    """DOCVEC_LANDING_DIR pointed at a bucket prefix holding files but no day folders, a minute after
    today's three documents were loaded from the right prefix: the run is refused with a sentence
    naming the path and the collection mode, and the three documents are still found."""
    today = dt.date(2026, 4, 30)
    client = s3.client()
    for name, (text, _) in TODAY.items():
        client.put_object(Bucket=BUCKET, Key=f"landing/{today}/{name}", Body=text.encode())
        client.put_object(Bucket=BUCKET, Key=f"handbook/{name}", Body=text.encode())

    def source(prefix: str) -> SourceResource:
        return SourceResource(landing_dir=f"s3://{BUCKET}/{prefix}", endpoint_url=s3.endpoint, region=REGION,
                              access_key_id=s3.key, secret_access_key=s3.secret)

    resources = {"postgres": PostgresResource(database_url=isolated.database_url), "embedder": EmbedderResource(),
                 "retention_window": RetentionResource(as_of=today.isoformat()),
                 "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches"))}

    def run(prefix: str):
        return materialize(ASSETS, resources={**resources, "source": source(prefix)}, partition_key=today.isoformat(),
                           raise_on_error=False)

    assert run("landing").success
    wrong = run("handbook")
    assert not wrong.success
    message = wrong.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert f"s3://{BUCKET}/handbook/{today}/ does not exist" in message, message
    assert f"s3://{BUCKET}/handbook/YYYY-MM-DD/" in message and "holds files but no day folders" in message
    assert "a folder without day folders is a collection" in message
    with connections.connect(isolated) as conn:
        for name, (text, word) in TODAY.items():
            assert [(h.doc_id, h.text) for h in search.search(conn, embedder, word, k=3, mode="text")] == [(name, text)]

    # Synced again with the same bytes (new LastModified, same ETag): nothing downloaded, the day unchanged.
    time.sleep(1.1)
    for name, (text, _) in TODAY.items():
        client.put_object(Bucket=BUCKET, Key=f"landing/{today}/{name}", Body=text.encode())
    s3.log.reset()
    synced = run("landing")
    assert synced.success and s3.log.counts["object_get"] == 0, s3.log.counts
    read = {k: v.value for k, v in synced.asset_materializations_for_node("raw_documents")[0].metadata.items()}
    assert read["files_parsed"] == 0 and read["days_unchanged"] == 1
