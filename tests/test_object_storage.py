"""Landing zones in object storage: three days ingested from a real S3-compatible server over HTTP
through the Dagster assets, counted request by request: an unchanged rerun reads no object, an edited
object re-embeds only its changed chunks, a deleted one loses its chunks; wrong credentials, a missing
bucket, throttling and keys that try to leave their day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dagster import build_sensor_context, materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline import sample_corpus
from pipeline.ingest import stages
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions, StorageUnavailable
from pipeline.storage import connections, model_registry
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from schedules import landing_sensor
from tests.support.databases import fresh_database
from tests.support.s3_server import REGION, S3Server, s3_server

BUCKET, PREFIX = "docvec-landing", "teams/docs"
END = dt.date(2026, 3, 7)
DAYS = [END - dt.timedelta(days=n) for n in (2, 1, 0)]
ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def upload_sample(s3: S3Server, tmp_path: Path) -> dict[str, bytes]:
    """The sample corpus's last three days, uploaded under PREFIX/YYYY-MM-DD/…: {key: bytes}."""
    local = tmp_path / "sample"
    sample_corpus.write_sample_corpus(local, end=END, days=3, notes_per_topic_per_day=2)
    client, objects = s3.client(), {}
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = f"{PREFIX}/{path.relative_to(local).as_posix()}"
        objects[key] = path.read_bytes()
        client.put_object(Bucket=BUCKET, Key=key, Body=objects[key])
    return objects


def source(s3: S3Server, **overrides) -> SourceResource:
    return SourceResource(**{"landing_dir": f"s3://{BUCKET}/{PREFIX}", "endpoint_url": s3.endpoint, "region": REGION,
                             "access_key_id": s3.key, "secret_access_key": s3.secret, **overrides})


def run(resources: dict, first: dt.date = DAYS[0], last: dt.date = DAYS[-1]):
    return materialize(ASSETS, resources=resources, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()})


def meta(result, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


@pytest.fixture(scope="module")
def ingested(s3, migrated, embedder, tmp_path_factory):
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_object_storage")
    objects = upload_sample(s3, tmp_path_factory.mktemp("s3"))
    resources = {"postgres": PostgresResource(database_url=isolated.database_url), "embedder": EmbedderResource(),
                 "source": source(s3), "retention_window": RetentionResource(as_of=END.isoformat()),
                 "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path_factory.mktemp("batches")))}
    s3.log.reset()
    first = run(resources)
    assert first.success
    return isolated, resources, objects, first


def test_three_days_from_object_storage_then_an_unchanged_rerun_reads_no_object(s3, ingested) -> None:
    isolated, resources, objects, first = ingested
    loaded = meta(first, "vector_store")
    assert loaded["days"] == 3 and loaded["documents"] == len(objects) and loaded["days_unchanged"] == 0
    assert meta(first, "raw_documents")["landing"] == f"s3://{BUCKET}/{PREFIX}"
    with connections.connect(isolated) as conn:
        per_day = dict(conn.execute("SELECT ingest_date, count(DISTINCT doc_id) FROM documents GROUP BY 1").fetchall())
    assert per_day == {day: sum(1 for k in objects if k.startswith(f"{PREFIX}/{day}/")) for day in DAYS}

    s3.log.reset()
    again = run(resources)
    assert again.success and meta(again, "vector_store")["days_unchanged"] == 3
    assert s3.log.counts["object_get"] == 0 and s3.log.counts["object_head"] == 0, s3.log.counts
    assert s3.log.counts["list"] >= 3, "one listing per day decides it"


def test_an_edited_object_reembeds_its_changed_chunks_and_a_deleted_one_loses_them(s3, ingested) -> None:
    isolated, resources, objects, _ = ingested
    client = s3.client()
    edited_key = next(k for k in objects if k.startswith(f"{PREFIX}/{DAYS[1]}/") and k.endswith(".md"))
    deleted_key = next(k for k in objects if k.startswith(f"{PREFIX}/{DAYS[2]}/") and k.endswith(".md"))
    client.put_object(Bucket=BUCKET, Key=edited_key,
                      Body=objects[edited_key] + b"\nA sentence added in the bucket, about lighthouses.\n")
    client.delete_object(Bucket=BUCKET, Key=deleted_key)
    s3.log.reset()
    result = run(resources, DAYS[1], DAYS[2])
    assert result.success
    assert s3.log.counts["object_get"] == 1, "of two changed days, only the edited object is downloaded"
    read = meta(result, "raw_documents")
    assert read["documents"] == 1 and read["documents_kept"] == sum(
        1 for k in objects if k.startswith((f"{PREFIX}/{DAYS[1]}/", f"{PREFIX}/{DAYS[2]}/"))) - 2
    assert meta(result, "chunk_embeddings")["embedded"] == 1, "the edited note's one new chunk"
    assert meta(result, "vector_store")["chunks"] == meta(result, "vector_store")["documents"]
    with connections.connect(isolated) as conn:
        served = model_registry.serving(conn).id
        gone = conn.execute("SELECT count(*) FROM chunks WHERE ingest_date = %s AND doc_id = %s AND model_id = %s",
                            (DAYS[2], deleted_key.split("/", 3)[3], served)).fetchone()[0]
        kept = conn.execute("SELECT text FROM chunks WHERE ingest_date = %s AND doc_id = %s AND model_id = %s",
                            (DAYS[1], edited_key.split("/", 3)[3], served)).fetchall()
    assert gone == 0 and any("lighthouses" in row[0] for row in kept)


def test_the_sensor_lists_object_storage_like_a_folder(s3, ingested) -> None:
    _, resources, _, _ = ingested
    context = build_sensor_context(resources={"source": resources["source"],
                                              "retention_window": resources["retention_window"]})
    first = landing_sensor(context)
    assert sorted(r.partition_key for r in first.run_requests) == [d.isoformat() for d in DAYS]
    s3.log.reset()
    quiet = landing_sensor(build_sensor_context(cursor=first.cursor, resources={
        "source": resources["source"], "retention_window": resources["retention_window"]}))
    assert quiet.run_requests == [] and s3.log.counts["object_get"] == 0


def test_wrong_credentials_and_a_missing_bucket_fail_clearly_without_the_secret(s3, ingested) -> None:
    _, resources, _, _ = ingested
    wrong = run({**resources, "source": source(s3, secret_access_key="not-the-secret-8f3a")})
    assert not wrong.success
    message = wrong.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "access denied" in message and f"s3://{BUCKET}/{PREFIX}" in message and "AWS_ACCESS_KEY_ID" in message
    assert "not-the-secret-8f3a" not in message and s3.secret not in message
    missing = run({**resources, "source": source(s3, landing_dir="s3://no-such-bucket/landing")})
    message = missing.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "'no-such-bucket' does not exist" in message and "endpoint_url" in message


def test_keys_that_try_to_leave_their_day_stay_inside_it(s3, migrated, tmp_path) -> None:
    day = dt.date(2026, 3, 10)
    client = s3.client()
    for key in (f"{PREFIX}/{day}/../{DAYS[0]}/planted.md", f"{PREFIX}/{day}//etc/passwd.md",
                f"{PREFIX}/{day}/odd name; rm -rf ~ $(x).md"):
        client.put_object(Bucket=BUCKET, Key=key, Body=b"A document whose key looks like a path.")
    options = StorageOptions(endpoint_url=s3.endpoint, region=REGION, key=s3.key, secret=s3.secret)
    read = stages.read_documents(open_landing(f"s3://{BUCKET}/{PREFIX}", options), day)
    assert sorted(d.doc_id for d in read.documents) == sorted([f"../{DAYS[0]}/planted.md", "/etc/passwd.md",
                                                               "odd name; rm -rf ~ $(x).md"])
    assert all(d.ingest_date == day and d.source_uri.startswith(f"{day}/") for d in read.documents)
    assert not Path("/etc/passwd.md").exists() and not (tmp_path.parent / DAYS[0].isoformat()).exists()


def test_throttling_is_retried_with_backoff_then_fails_clearly(s3, tmp_path) -> None:
    day = dt.date(2026, 3, 11)
    s3.client().put_object(Bucket=BUCKET, Key=f"{PREFIX}/{day}/note.md", Body=b"Throttled but delivered.")
    # botocore's own retries are turned off here, so every 503 reaches docvec's retry loop.
    options = StorageOptions(endpoint_url=s3.endpoint, region=REGION, key=s3.key, secret=s3.secret, retries=4,
                             backoff_seconds=0.05, extra={"config_kwargs": {"retries": {"max_attempts": 1}}})
    landing = open_landing(f"s3://{BUCKET}/{PREFIX}", options)
    s3.log.fail_next_reads = 2
    read = stages.read_documents(landing, day)
    assert [d.text for d in read.documents] == ["Throttled but delivered."], read.dead_letters
    s3.log.fail_next_reads = 100
    with pytest.raises(StorageUnavailable, match=r"failed 4 times in a row.*retry the run later"):
        stages.read_documents(landing, day)
    s3.log.fail_next_reads = 0
