"""Permissions come with the documents (#28, ingest side): every stored version of a document gets its
``readers`` from its front matter, else the ``.docvec-readers`` sidecar of its day folder or collection,
else the source's default; a sidecar or default change updates them without parsing or embedding."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import replace

import psycopg
import pytest
from dagster import materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.errors import ConfigError
from pipeline.ingest import planning
from pipeline.ingest.landing import LocalLanding
from pipeline.ingest.permissions import PermissionSettings
from pipeline.ingest.planning import ReadOptions
from pipeline.ops import status
from pipeline.records import KeptDocument, SourceDocument
from pipeline.storage import connections
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from tests.support.databases import fresh_database
from tests.support.engine_runs import never, run_days, write_files
from tests.support.readers_store import chunks_out_of_step
from tests.support.s3_server import REGION, s3_server
from tests.support.sample import day_folder

DAY1, DAY2 = dt.date(2026, 6, 1), dt.date(2026, 6, 2)
OFF, ON = PermissionSettings(), PermissionSettings(enabled=True)
ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]


@pytest.fixture
def isolated(migrated, embedder, request):
    return fresh_database(migrated, embedder.info.dim, f"docvec_perm_{request.node.name[5:40].lower()}")


def run(conn: psycopg.Connection, landing, days: list[dt.date], embedder, config, permissions=OFF, *, model=None):
    """The run's days through the engine as the assets run them, with these permission settings."""
    return run_days(conn, landing, days, embedder, config, options=ReadOptions(permissions=permissions), model=model)


def readers(conn: psycopg.Connection, day: dt.date | None = None) -> dict[str, list[str]]:
    """{doc_id: readers} of the day's stored versions (every version's, keyed doc_id@day, when no day);
    every chunk carries its version's readers (what the chunks policy reads)."""
    assert chunks_out_of_step(conn) == []
    rows = conn.execute("SELECT doc_id, ingest_date, readers FROM documents ORDER BY 1, 2").fetchall()
    return {(doc_id if day else f"{doc_id}@{stored}"): list(r) for doc_id, stored, r in rows
            if day is None or stored == day}


def chunk_rows(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT ingest_date::text, chunk_id FROM chunks ORDER BY 1, 2").fetchall()


DAY_FILES = {
    "memo.md": "---\ntitle: Memo\nreaders: [alice@example.com, group:hr, alice@example.com]\n---\n\n"
               "The quarterly memo mentions the vardolin budget.",
    "notes.md": "# Notes\n\nThe canteen serves brellic soup on Fridays.",
    "hr/pay.md": "# Pay\n\nSalaries are paid on the twelfth via the ostramid system.",
    "hr/reviews/2026.md": "# Reviews\n\nAnnual reviews use the pelgrave rubric.",
    "hr/open.md": "# Open\n\nThe HR office is open to everyone on Mondays.",
    "bad.md": "---\nreaders: alice bob\n---\n\nThis memo names its readers wrongly.",
}
SIDECAR = "# who reads what\n* group:staff\n\nhr/** group:hr\nhr/open.md *\n"


def test_front_matter_then_sidecar_then_default_and_a_sidecar_edit_parses_and_embeds_nothing(
        isolated, embedder, chunking_config, tmp_path) -> None:
    folder = day_folder(tmp_path, DAY1)
    write_files(folder, DAY_FILES)
    (folder / ".docvec-readers").write_text(SIDECAR)
    landing = LocalLanding(tmp_path)
    with connections.connect(isolated) as conn:
        report, [load] = run(conn, landing, [DAY1], embedder, chunking_config)
        assert readers(conn, DAY1) == {
            "memo.md": ["alice@example.com", "group:hr"],  # front matter first, sorted and deduplicated
            "notes.md": ["group:staff"],  # the sidecar's `*` matches a name at any depth
            "hr/pay.md": ["group:hr"],  # the last matching line wins
            "hr/reviews/2026.md": ["group:hr"],  # ** spans folders
            "hr/open.md": ["*"],
        }, "the sidecar is never a document"
        [letter] = report.dead_letters
        assert letter.source_uri == f"{DAY1}/bad.md" and "'alice bob'" in letter.error and "front matter" in letter.detail
        assert load.documents == 5
        [day_status] = status.day_statuses(conn)
        assert day_status.restricted == 4, "docvec status counts the day's documents not everyone may read"
        assert " restricted  index" in status.format_status([day_status], DAY1, 30)
        (folder / "bad.md").unlink()  # a dead letter is read again on each run of its day; fixed here
        run(conn, landing, [DAY1], embedder, chunking_config, model=never)
        stored_chunks = chunk_rows(conn)

        # Only the sidecar changes: the day is planned again (the sidecar is part of its listing), no file is
        # parsed, the model is never loaded, the chunks stay, and who may read is updated.
        (folder / ".docvec-readers").write_text("* group:staff\nhr/** group:hr-admins tenant:acme\n")
        report, [load] = run(conn, landing, [DAY1], embedder, chunking_config, model=never)
        plan = report.plans[DAY1.isoformat()]
        assert plan.files_parsed == 0 and not plan.unchanged and load.kept_chunks == len(stored_chunks)
        assert readers(conn, DAY1) == {
            "memo.md": ["alice@example.com", "group:hr"], "notes.md": ["group:staff"],
            "hr/pay.md": ["group:hr-admins", "tenant:acme"], "hr/reviews/2026.md": ["group:hr-admins", "tenant:acme"],
            "hr/open.md": ["group:hr-admins", "tenant:acme"]}
        assert chunk_rows(conn) == stored_chunks

        # The same listing again: unchanged, nothing opened.
        report, [load] = run(conn, landing, [DAY1], embedder, chunking_config, model=never)
        assert load.unchanged and report.plans[DAY1.isoformat()].files_read == 0

        # The sidecar removed: permissions off, so documents naming no readers are everyone's again.
        (folder / ".docvec-readers").unlink()
        run(conn, landing, [DAY1], embedder, chunking_config, model=never)
        assert {doc: r for doc, r in readers(conn, DAY1).items() if doc != "memo.md"} == {
            "notes.md": ["*"], "hr/pay.md": ["*"], "hr/reviews/2026.md": ["*"], "hr/open.md": ["*"]}

        # Permissions on without a default: deny by default, again without parsing or embedding.
        report, _ = run(conn, landing, [DAY1], embedder, chunking_config, ON, model=never)
        assert report.plans[DAY1.isoformat()].files_parsed == 0
        assert readers(conn, DAY1) == {"memo.md": ["alice@example.com", "group:hr"], "notes.md": [],
                                       "hr/pay.md": [], "hr/reviews/2026.md": [], "hr/open.md": []}
        staff = PermissionSettings(enabled=True, default_readers=("group:staff",))
        run(conn, landing, [DAY1], embedder, chunking_config, staff, model=never)
        assert readers(conn, DAY1)["notes.md"] == ["group:staff"]


def test_a_day_whose_documents_are_everyones_keeps_its_fingerprint() -> None:
    """Readers count in the content fingerprint only when some are not ``*``: stores from before
    permissions keep their fingerprints (no day is read again after the upgrade)."""
    document = SourceDocument("notes.md", f"{DAY1}/notes.md", DAY1, "text", "ab" * 32, 4)
    kept = KeptDocument("old.md", "cd" * 32, readers=("*",))
    before = hashlib.sha256(json.dumps({"documents": [["notes.md", "ab" * 32], ["old.md", "cd" * 32]],
                                        "dead_letters": []}, sort_keys=True).encode()).hexdigest()
    assert planning.content_fingerprint([document], [], [kept]) == before
    assert planning.content_fingerprint([document], [], [replace(kept, readers=None)]) == before
    restricted = planning.content_fingerprint([replace(document, readers=("group:hr",))], [], [kept])
    assert restricted != before
    assert planning.content_fingerprint([document], [], [replace(kept, readers=())]) not in (before, restricted)


def test_every_version_carries_its_latest_versions_readers(isolated, embedder, chunking_config, tmp_path) -> None:
    write_files(day_folder(tmp_path, DAY1), {"notes.md": DAY_FILES["notes.md"]})
    write_files(day_folder(tmp_path, DAY2), {"notes.md": "---\nreaders: group:board\n---\n\nThe brellic soup is gone."})
    landing = LocalLanding(tmp_path)
    with connections.connect(isolated) as conn:
        run(conn, landing, [DAY1], embedder, chunking_config)
        assert readers(conn) == {f"notes.md@{DAY1}": ["*"]}
        assert "restricted" not in status.format_status(status.day_statuses(conn), DAY1, 30), "as before permissions"
        run(conn, landing, [DAY2], embedder, chunking_config)
        assert readers(conn) == {f"notes.md@{DAY1}": ["group:board"], f"notes.md@{DAY2}": ["group:board"]}, (
            "revoking on the new version revokes the old one (the latest-version rule would otherwise show it)")
        # A rerun of the older day keeps the latest version's readers on it.
        (day_folder(tmp_path, DAY1) / "notes.md").write_text("# Notes\n\nThe canteen serves brellic stew now.")
        run(conn, landing, [DAY1], embedder, chunking_config)
        assert readers(conn) == {f"notes.md@{DAY1}": ["group:board"], f"notes.md@{DAY2}": ["group:board"]}


def test_a_malformed_sidecar_changes_nothing(isolated, embedder, chunking_config, tmp_path) -> None:
    folder = day_folder(tmp_path, DAY1)
    write_files(folder, {"notes.md": DAY_FILES["notes.md"], "hr/pay.md": DAY_FILES["hr/pay.md"]})
    (folder / ".docvec-readers").write_text("hr/** group:hr\n")
    landing = LocalLanding(tmp_path)
    with connections.connect(isolated) as conn:
        run(conn, landing, [DAY1], embedder, chunking_config)
        before = readers(conn), chunk_rows(conn)
        (folder / ".docvec-readers").write_text("# ok\nhr/** group:hr\nhr/pay.md group:hr,finance\n")
        (folder / "notes.md").write_text("# Notes\n\nThe canteen now serves quorvent stew.")
        with pytest.raises(ConfigError) as refused:
            run(conn, landing, [DAY1], embedder, chunking_config, model=never)
        message = str(refused.value)
        assert f"{landing.url}/{DAY1}/.docvec-readers, line 3" in message and "group:hr,finance" in message
        assert "GLOB PRINCIPAL" in message
        assert (readers(conn), chunk_rows(conn)) == before, "nothing of the day changed"
        (folder / ".docvec-readers").write_text("hr/** \n")
        with pytest.raises(ConfigError, match=r"line 1: 'hr/\*\*' names no principal"):
            run(conn, landing, [DAY1], embedder, chunking_config, model=never)


def test_a_collection_takes_its_readers_from_the_sidecar_at_its_root(isolated, embedder, chunking_config,
                                                                     tmp_path) -> None:
    root = tmp_path / "share"
    write_files(root, {name: text for name, text in DAY_FILES.items() if name != "bad.md"})
    (root / ".docvec-readers").write_text(SIDECAR)
    landing = LocalLanding(root, collection=True)
    with connections.connect(isolated) as conn:
        report, _ = run(conn, landing, [DAY1], embedder, chunking_config, ON)
        assert ".docvec-readers" not in readers(conn, DAY1)
        assert readers(conn, DAY1) == {"memo.md": ["alice@example.com", "group:hr"], "notes.md": ["group:staff"],
                                       "hr/pay.md": ["group:hr"], "hr/reviews/2026.md": ["group:hr"],
                                       "hr/open.md": ["*"]}
        stored_chunks = chunk_rows(conn)

        # A sidecar edit the next day: the unchanged documents (stored on day 1) get their new readers
        # on their live version, with nothing parsed, embedded or written on day 2.
        (root / ".docvec-readers").write_text("hr/** group:hr-admins\n")
        report, _ = run(conn, landing, [DAY2], embedder, chunking_config, ON, model=never)
        plan = report.plans[DAY2.isoformat()]
        assert plan.files_parsed == 0 and plan.changes is not None and plan.changes.unchanged == 5
        assert chunk_rows(conn) == stored_chunks
        assert readers(conn, DAY1) == {"memo.md": ["alice@example.com", "group:hr"], "notes.md": [],
                                       "hr/pay.md": ["group:hr-admins"], "hr/reviews/2026.md": ["group:hr-admins"],
                                       "hr/open.md": ["group:hr-admins"]}
        assert readers(conn, DAY2) == {}

        # A changed document's new version names its readers: its older version carries them too.
        write_files(root, {"notes.md": "---\nreaders: group:canteen\n---\n\nThe canteen serves brellic stew now."})
        run(conn, landing, [DAY2], embedder, chunking_config, ON)
        assert readers(conn)[f"notes.md@{DAY1}"] == readers(conn)[f"notes.md@{DAY2}"] == ["group:canteen"]


# -- object storage through the Dagster assets, on the real S3 server ----------------------------------

BUCKET = "docvec-permissions"


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def test_a_bucket_collection_takes_readers_from_its_sidecar_and_the_source_resource(s3, isolated, embedder,
                                                                                    tmp_path) -> None:
    client = s3.client()
    for name in ("notes.md", "hr/pay.md"):
        client.put_object(Bucket=BUCKET, Key=f"share/{name}", Body=DAY_FILES[name].encode())
    client.put_object(Bucket=BUCKET, Key="share/.docvec-readers", Body=b"hr/** group:hr\n")
    source = SourceResource(landing_dir=f"s3://{BUCKET}/share", mode="collection", endpoint_url=s3.endpoint,
                            region=REGION, access_key_id=s3.key, secret_access_key=s3.secret, permissions=True,
                            default_readers=["group:staff", "group:staff"])

    def run_assets(day: dt.date):
        resources = {"postgres": PostgresResource(database_url=isolated.database_url), "embedder": EmbedderResource(),
                     "retention_window": RetentionResource(as_of=day.isoformat()), "source": source,
                     "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches"))}
        return materialize(ASSETS, resources=resources, partition_key=day.isoformat(), raise_on_error=False)

    assert run_assets(DAY1).success
    with connections.connect(isolated) as conn:
        assert readers(conn, DAY1) == {"notes.md": ["group:staff"], "hr/pay.md": ["group:hr"]}
    client.put_object(Bucket=BUCKET, Key="share/.docvec-readers", Body=b"hr/** group:hr tenant:acme\n")
    s3.log.reset()
    assert run_assets(DAY2).success
    assert s3.log.counts["object_get"] == 1, f"only the sidecar is downloaded: {s3.log.counts}"
    with connections.connect(isolated) as conn:
        assert readers(conn, DAY1) == {"notes.md": ["group:staff"], "hr/pay.md": ["group:hr", "tenant:acme"]}
        assert readers(conn, DAY2) == {}
