"""Deletions in day-folder mode: a tombstone ("document X deleted as of day D") landed with a day as
its ``.docvec-deleted`` manifest, or written by ``docvec delete``. It hides every version stored on
its day or before from every search mode; a version landed on a later day is live again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from pipeline.cli.main import main
from pipeline.ingest import deletions, planning
from pipeline.ingest.landing import signature
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions
from pipeline.ingest.planning import ReadOptions, Recipe
from pipeline.ops import ingest_steps, loading
from pipeline.query import search
from pipeline.storage import day_summaries, tombstones
from tests.support.s3_server import REGION, s3_server
from tests.support.sample import day_folder

MODES = ("vector", "text", "hybrid")
D1, D2, D3 = dt.date(2026, 5, 11), dt.date(2026, 5, 12), dt.date(2026, 5, 13)


def _load(conn: psycopg.Connection, landing: str | Path, day: dt.date, embedder, config, *, force: bool = False):
    """One day the way the assets run it: planned (its manifest read with its files), chunked,
    embedded, loaded; returns (plan, load, load report)."""
    recipe = Recipe(config, embedder.info, contextual=embedder.contextual)
    plans = ingest_steps.read_days(conn, open_landing(str(landing)), [day], recipe, ReadOptions(), force=force).plans
    chunks = ingest_steps.chunk_days(plans, embedder.backend_tokenizer).batches
    embedded = ingest_steps.embed_days(conn, chunks, lambda: embedder, log=lambda _: None).batches
    report = loading.load_days(conn, embedded)
    return plans[day.isoformat()], report.loads[0], report


def _found(conn: psycopg.Connection, embedder, query: str, doc_id: str) -> dict[str, list[tuple[dt.date, str]]]:
    """Per search mode, the hits of ``doc_id`` for ``query``: (day, text)."""
    return {mode: [(h.ingest_date, h.text) for h in search.search(conn, embedder, query, k=20, mode=mode)
                   if h.doc_id == doc_id] for mode in MODES}


def test_a_manifest_parses_ids_and_is_never_a_document(tmp_path) -> None:
    assert deletions.parse("# gone since the audit\n\n ./guides/old.md \nnotes/a b.txt\nguides/old.md\n") == (
        "guides/old.md", "notes/a b.txt")
    folder = day_folder(tmp_path, D1)
    (folder / "kept.md").write_text("A document.")
    landing = open_landing(str(tmp_path))
    files = landing.files(D1)
    assert deletions.find(landing, D1) is None
    assert deletions.listed_signature(files, None) == signature(files), "a day without a manifest: as before"
    (folder / deletions.MANIFEST).write_text("kept.md\n")
    manifest = deletions.find(landing, D1)
    assert [f.rel for f in landing.files(D1)] == ["kept.md"], "the manifest is not listed as a document"
    assert manifest is not None and deletions.listed_signature(files, manifest) != signature(files)
    read = planning.read_files(landing, D1, files, manifest=deletions.read(landing, D1, manifest))
    assert read.deleted == ("kept.md",) and read.documents == [], "a file its own day deletes is not read"
    assert [letter.source_uri for letter in read.dead_letters] == [f"{D1}/kept.md"]
    (folder / deletions.MANIFEST).write_bytes(b"\xff\xfe\x00bad")
    broken = deletions.read(landing, D1, deletions.find(landing, D1))
    assert broken.ids == () and "UTF-8" in broken.dead_letters[0].error


def test_a_manifest_in_object_storage_is_found_by_the_same_code(tmp_path) -> None:
    bucket, day = "docvec-tombstones", D1
    with s3_server() as s3:
        client = s3.client()
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=f"docs/{day}/guide.md", Body=b"# Guide\n\nThe guide.")
        landing = open_landing(f"s3://{bucket}/docs", StorageOptions(endpoint_url=s3.endpoint, region=REGION,
                                                                     key=s3.key, secret=s3.secret))
        assert deletions.find(landing, day) is None
        client.put_object(Bucket=bucket, Key=f"docs/{day}/{deletions.MANIFEST}", Body=b"# old\nold/page.md\n")
        s3.log.reset()
        files = landing.files(day)
        manifest = deletions.find(landing, day)
        assert [f.rel for f in files] == ["guide.md"] and manifest is not None
        assert s3.log.counts["object_get"] == s3.log.counts["object_head"] == 0, "found by listing, nothing read"
        assert manifest.stamp == deletions.find(landing, day).stamp, "the same stamp from every listing"
        read = planning.read_files(landing, day, files, manifest=deletions.read(landing, day, manifest))
        assert read.deleted == ("old/page.md",) and [d.doc_id for d in read.documents] == ["guide.md"]
        assert read.source.signature == deletions.listed_signature(files, manifest) != signature(files)


def test_land_delete_reland_across_days_in_every_mode(conn, migrated, tmp_path, embedder, chunking_config) -> None:
    query = "quokka sanctuary feeding timetable"
    d1 = day_folder(tmp_path, D1)
    (d1 / "tomb-quokka.md").write_text("The quokka sanctuary feeding timetable: quokkas eat at dawn.")
    (d1 / "tomb-wombat.md").write_text("The wombat burrow survey counts wombats every spring.")
    _load(conn, tmp_path, D1, embedder, chunking_config)
    assert all(_found(conn, embedder, query, "tomb-quokka.md").values()), "landed: found in every mode"

    d2 = day_folder(tmp_path, D2)
    (d2 / "tomb-other.md").write_text("An unrelated note about lighthouse lenses.")
    (d2 / deletions.MANIFEST).write_text("# removed upstream\ntomb-quokka.md\ntomb-never-loaded.md\n")
    plan, load, report = _load(conn, tmp_path, D2, embedder, chunking_config)
    assert plan.read.deleted == ("tomb-never-loaded.md", "tomb-quokka.md")
    assert _found(conn, embedder, query, "tomb-quokka.md") == {mode: [] for mode in MODES}, "gone in every mode"
    assert all(_found(conn, embedder, "wombat burrow survey", "tomb-wombat.md").values()), "the others stay"
    assert load.deleted == 1 and load.deleted_unknown == ("tomb-never-loaded.md",)
    assert report.metadata()["documents_deleted"] == 1
    [warning] = report.warnings()
    assert "tomb-never-loaded.md" in warning and str(D2) in warning, "an unknown id warns, never fails"
    assert tombstones.on_day(conn, D2) == ["tomb-never-loaded.md", "tomb-quokka.md"]
    assert [s.deleted for s in day_summaries.day_summaries(conn, [D2])] == [2]

    again, load, _ = _load(conn, tmp_path, D2, embedder, chunking_config)
    assert again.unchanged and again.files_read == 0 and load.unchanged, "the manifest is in the listing: unchanged"
    (d2 / deletions.MANIFEST).write_text("tomb-quokka.md\n# a comment changes nothing\ntomb-never-loaded.md\n")
    edited, load, _ = _load(conn, tmp_path, D2, embedder, chunking_config)
    assert edited.files_read and edited.unchanged, "an edited manifest is read again; the same ids: unchanged"

    d3 = day_folder(tmp_path, D3)
    (d3 / "tomb-quokka.md").write_text("The quokka sanctuary feeding timetable changed: quokkas now eat at noon.")
    _load(conn, tmp_path, D3, embedder, chunking_config)
    assert _found(conn, embedder, query, "tomb-quokka.md") == {mode: [(D3, (
        "The quokka sanctuary feeding timetable changed: quokkas now eat at noon."))] for mode in MODES}, \
        "landed again after its tombstone: live again, its new version only"

    (d2 / deletions.MANIFEST).write_text("tomb-wombat.md\n")
    _, load, _ = _load(conn, tmp_path, D2, embedder, chunking_config)
    assert load.deleted == 1 and tombstones.on_day(conn, D2) == ["tomb-wombat.md"], "the manifest's ids replace the day's"
    assert _found(conn, embedder, "wombat burrow survey", "tomb-wombat.md") == {mode: [] for mode in MODES}


def test_cli_delete_hides_says_where_the_file_still_is_and_survives_reloads(
        conn, migrated, tmp_path, embedder, chunking_config, capsys) -> None:
    day, later = dt.date(2026, 5, 15), dt.date(2026, 5, 16)
    query = "narwhal tusk acoustic sensing"
    (day_folder(tmp_path, day) / "tomb-narwhal.md").write_text("Narwhal tusk acoustic sensing detects ice cracks.")
    _load(conn, tmp_path, day, embedder, chunking_config)
    assert all(_found(conn, embedder, query, "tomb-narwhal.md").values())

    home = ["--home", str(migrated.home)]
    assert main([*home, "delete", "tomb-narwhal.md", "tomb-typo.md", "--day", str(day), "--landing", str(tmp_path)]) == 2
    assert "tomb-typo.md" in capsys.readouterr().err
    assert tombstones.on_day(conn, day) == [] and all(_found(conn, embedder, query, "tomb-narwhal.md").values()), \
        "an unknown id: nothing written"

    (day_folder(tmp_path, later) / "tomb-narwhal.md").write_text("Narwhal tusk acoustic sensing, revised.")
    searchable = tombstones.searchable_documents(conn)
    assert main([*home, "delete", "tomb-narwhal.md", "--day", str(day), "--landing", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert tombstones.searchable_documents(conn) == searchable - 1
    assert main([*home, "status", "--today", str(day)]) == 0
    assert f"searchable documents: {searchable - 1:,}" in capsys.readouterr().out
    assert f"hid 1 documents from search as of {day}" in out and f"tomb-narwhal.md: its version of {day}" in out
    assert f"still holds it in {day}/" in out, "the landing zone still holds the file"
    assert f"holds it in {later}/: a run of that day loads it again" in out, "and a newer day would bring it back"
    assert _found(conn, embedder, query, "tomb-narwhal.md") == {mode: [] for mode in MODES}

    _, load, _ = _load(conn, tmp_path, day, embedder, chunking_config, force=True)
    assert load.deleted == 0 and tombstones.on_day(conn, day) == ["tomb-narwhal.md"], "a reload keeps a CLI tombstone"
    assert _found(conn, embedder, query, "tomb-narwhal.md") == {mode: [] for mode in MODES}
    _load(conn, tmp_path, later, embedder, chunking_config)
    assert [d for d, _ in _found(conn, embedder, query, "tomb-narwhal.md")["text"]] == [later], "expected: back"


def test_retention_keeps_a_tombstone_only_while_it_hides_something(conn) -> None:
    old, hides = dt.date(2024, 1, 3), dt.date(2024, 1, 4)
    conn.execute("INSERT INTO documents (ingest_date, doc_id, source_uri, content_sha256, bytes, chunk_count, metadata) "
                 "VALUES (%s, 'tomb-kept.md', 'x', 'x', 1, 0, '{}') ON CONFLICT DO NOTHING", (old,))
    try:
        assert tombstones.record(conn, old, ["tomb-nothing.md"], "cli").unknown == ["tomb-nothing.md"]
        assert [v.doc_id for v in tombstones.record(conn, hides, ["tomb-kept.md"], "cli").hidden] == ["tomb-kept.md"]
        tombstones.forget_before(conn, dt.date(2024, 2, 1))
        assert tombstones.on_day(conn, old) == [], "hides nothing: dropped with its day"
        assert tombstones.on_day(conn, hides) == ["tomb-kept.md"], "a version it hides is still stored (a skipped day)"
    finally:
        conn.execute("DELETE FROM documents WHERE doc_id = 'tomb-kept.md'")
        conn.execute("DELETE FROM document_deletions WHERE doc_id LIKE 'tomb-%%' AND ingest_date < '2025-01-01'")


def test_the_sensor_requests_a_day_whose_manifest_lands(tmp_path) -> None:
    from dagster import DagsterInstance, build_sensor_context

    from resources import RetentionResource, SourceResource
    from schedules import landing_sensor

    today = dt.date(2026, 6, 30)
    (day_folder(tmp_path, today) / "a.md").write_text("A note.")
    resources = {"source": SourceResource(landing_dir=str(tmp_path)),
                 "retention_window": RetentionResource(as_of=today.isoformat())}
    with DagsterInstance.ephemeral() as instance:
        first = landing_sensor(build_sensor_context(instance=instance, resources=resources))
        (day_folder(tmp_path, today) / deletions.MANIFEST).write_text("old.md\n")
        [request] = landing_sensor(build_sensor_context(instance=instance, resources=resources,
                                                        cursor=first.cursor)).run_requests
        assert request.partition_key == str(today)
