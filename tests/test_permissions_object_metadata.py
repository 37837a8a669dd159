"""Readers from object-storage metadata (#28, item 1), on the real S3 test server: an object's own
``x-amz-meta-docvec-readers`` gives its readers, after its front matter and before the sidecar; it is
read (one HEAD) only for an object about to be parsed, stored with the version so runs that keep the
version keep it, and an invalid principal there makes the document a dead letter naming the object."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from pipeline.ingest.collection import CollectionOptions
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions
from pipeline.ingest.permissions import PermissionSettings
from pipeline.ingest.planning import ReadOptions, Recipe
from pipeline.ops import ingest_steps, loading
from pipeline.storage import connections, dead_letters
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.readers_store import chunks_out_of_step
from tests.support.s3_server import REGION, s3_server

DAY = dt.date(2026, 6, 1)
BUCKET = "docvec-object-readers"
ON = PermissionSettings(enabled=True)


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def isolated(migrated, embedder, request):
    return fresh_database(migrated, embedder.info.dim, f"docvec_objr_{request.node.name[5:40].lower()}")


def run(conn: psycopg.Connection, landing, embedder, config, *, force: bool = False):
    return run_days(conn, landing, [DAY], embedder, config, options=ReadOptions(permissions=ON), force=force)


def readers(conn: psycopg.Connection) -> dict[str, list[str]]:
    """{doc_id: readers} of the day's versions; every chunk carries its version's (the chunks policy's)."""
    assert chunks_out_of_step(conn) == []
    return {doc_id: list(r) for doc_id, r in conn.execute(
        "SELECT doc_id, readers FROM documents WHERE ingest_date = %s ORDER BY 1", (DAY,)).fetchall()}


def test_object_metadata_readers_come_after_front_matter_and_before_the_sidecar(s3, isolated, embedder,
                                                                                chunking_config) -> None:
    client = s3.client()
    prefix = f"days/{DAY.isoformat()}"

    def put(name: str, body: str, metadata: dict[str, str] | None = None) -> None:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=body.encode(), Metadata=metadata or {})

    put("meta.md", "# Meta\n\nThe vardolin budget is reviewed by finance.", {"docvec-readers": "group:hr, alice"})
    put("front.md", "---\nreaders: [carol]\n---\n\n# Front\n\nThe brellic plan.", {"docvec-readers": "group:hr"})
    put("plain.md", "# Plain\n\nThe canteen serves ostramid soup.")
    put("bad.md", "# Bad\n\nThe pelgrave rubric.", {"docvec-readers": "alice bob"})
    put(".docvec-readers", "* group:staff\n")
    landing = open_landing(f"s3://{BUCKET}/days", StorageOptions(endpoint_url=s3.endpoint, region=REGION,
                                                                 key=s3.key, secret=s3.secret))
    with connections.connect(isolated) as conn:
        s3.log.reset()
        run(conn, landing, embedder, chunking_config)
        assert s3.log.counts["object_head"] == 4, f"one HEAD per object parsed: {s3.log.counts}"
        assert readers(conn) == {"meta.md": ["alice", "group:hr"], "front.md": ["carol"],
                                 "plain.md": ["group:staff"]}, "front matter, then object metadata, then sidecar"
        (letter,) = dead_letters.open_letters(conn, [DAY])
        assert letter["source_uri"] == f"{DAY}/bad.md"
        assert f"s3://{BUCKET}/days/{DAY}/bad.md" in letter["error"] and "docvec-readers" in letter["error"]
        assert "'alice bob' holds a space" in letter["error"] and "--metadata docvec-readers=" in letter["detail"]

        # Only the changed object is downloaded and HEADed; the unchanged ones keep their stored readers.
        client.delete_object(Bucket=BUCKET, Key=f"{prefix}/bad.md")
        put("plain.md", "# Plain\n\nThe canteen serves ostramid soup on Fridays.", {"docvec-readers": "group:eng"})
        s3.log.reset()
        report, _ = run(conn, landing, embedder, chunking_config)
        assert s3.log.counts["object_head"] == 1, f"an unchanged object is not HEADed again: {s3.log.counts}"
        assert sum(p.files_parsed for p in report.plans.values()) == 1
        assert readers(conn) == {"meta.md": ["alice", "group:hr"], "front.md": ["carol"], "plain.md": ["group:eng"]}

        # A sidecar edit: no object is downloaded or HEADed, and the stored object readers still beat it.
        put(".docvec-readers", "* group:everyone\n")
        s3.log.reset()
        report, _ = run(conn, landing, embedder, chunking_config)
        assert (s3.log.counts["object_head"], s3.log.counts["object_get"]) == (0, 1), s3.log.counts
        assert sum(p.files_parsed for p in report.plans.values()) == 0
        assert readers(conn) == {"meta.md": ["alice", "group:hr"], "front.md": ["carol"], "plain.md": ["group:eng"]}

        # A metadata-only change keeps the single-part ETag: seen when the bytes next change, or by force.
        client.copy_object(Bucket=BUCKET, Key=f"{prefix}/meta.md", CopySource={"Bucket": BUCKET, "Key": f"{prefix}/meta.md"},
                           Metadata={"docvec-readers": "group:finance"}, MetadataDirective="REPLACE")
        s3.log.reset()
        run(conn, landing, embedder, chunking_config)
        assert s3.log.counts["object_head"] == 0, s3.log.counts
        assert readers(conn)["meta.md"] == ["alice", "group:hr"]
        run(conn, landing, embedder, chunking_config, force=True)
        assert readers(conn) == {"meta.md": ["group:finance"], "front.md": ["carol"], "plain.md": ["group:eng"]}


def test_a_bucket_collection_keeps_object_readers_over_an_edited_sidecar(s3, isolated, embedder,
                                                                        chunking_config) -> None:
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="share/meta.md", Body=b"# Meta\n\nThe vardolin budget.",
                      Metadata={"docvec-readers": "group:hr"})
    client.put_object(Bucket=BUCKET, Key="share/plain.md", Body=b"# Plain\n\nThe brellic soup.")
    client.put_object(Bucket=BUCKET, Key="share/.docvec-readers", Body=b"* group:staff\n")
    landing = open_landing(f"s3://{BUCKET}/share", StorageOptions(endpoint_url=s3.endpoint, region=REGION,
                                                                  key=s3.key, secret=s3.secret), collection=True)
    recipe = Recipe(chunking_config, embedder.info, contextual=embedder.contextual)

    def snapshot(day: dt.date) -> None:
        report = ingest_steps.read_days(conn, landing, [day], recipe, ReadOptions(permissions=ON),
                                        snapshot=CollectionOptions())
        chunks = ingest_steps.chunk_days(report.plans, embedder.backend_tokenizer).batches
        loading.load_days(conn, ingest_steps.embed_days(conn, chunks, lambda: embedder, log=lambda _: None).batches)

    with connections.connect(isolated) as conn:
        snapshot(DAY)
        client.put_object(Bucket=BUCKET, Key="share/.docvec-readers", Body=b"* group:everyone\n")
        s3.log.reset()
        snapshot(DAY + dt.timedelta(days=1))
        assert s3.log.counts["object_head"] == 0, f"unchanged objects are not HEADed: {s3.log.counts}"
        assert {doc_id: list(r) for doc_id, r in conn.execute("SELECT doc_id, readers FROM documents")} == {
            "meta.md": ["group:hr"], "plain.md": ["group:everyone"]}
