"""The Dagster layer: definitions load, the DAG materializes a day against the real server and model."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import DagsterInstance, Definitions, build_schedule_context, materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.definitions import defs
from pipeline.storage import db
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.conftest import SAMPLE_END

ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)  # what the code server does: names unique, jobs resolvable
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert keys == {"raw_documents", "document_chunks", "chunk_embeddings", "vector_store", "vector_index", "retention"}
    job = defs.resolve_job_def("ingest_daily")
    assert job.partitions_def is not None
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, f"{spec.key} has a docstring"
        assert spec.owners and spec.group_name in {"ingest", "maintenance"}


def test_daily_schedule_targets_the_days_partition() -> None:
    schedule = defs.resolve_schedule_def("ingest_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 0 * * *", "UTC")
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 3, 7, 0, 30, tzinfo=dt.UTC))
        [request] = list(schedule.evaluate_tick(context).run_requests or [])
    assert request.partition_key == "2026-03-07"


@pytest.fixture()
def resources(migrated, sample_landing, tmp_path):
    return {
        "postgres": PostgresResource(home=str(migrated.home)),
        "embedder": EmbedderResource(),
        "source": SourceResource(landing_dir=str(sample_landing)),
        "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
        "retention_window": RetentionResource(as_of=SAMPLE_END.isoformat()),
    }


def test_materialize_one_day_end_to_end(resources, migrated) -> None:
    day = SAMPLE_END
    with DagsterInstance.ephemeral() as instance:
        for attempt in (1, 2):
            result = materialize(ASSETS, resources=resources, partition_key=day.isoformat(), instance=instance)
            assert result.success
            store_meta = {event.asset_key.to_user_string(): event.materialization.metadata
                          for event in result.get_asset_materialization_events()}
            chunks = store_meta["vector_store"]["chunks"].value
            assert chunks > 40
            if attempt == 1:
                assert "first 5 of" in store_meta["vector_store"]["sample_chunks"].value
                assert f"| {day} | " in store_meta["vector_store"]["per_day"].value
                embedded = store_meta["chunk_embeddings"]
                assert embedded["embedded"].value + embedded["reused"].value == chunks
            else:
                assert store_meta["chunk_embeddings"]["embedded"].value == 0, "an unchanged rerun embeds nothing"
                assert store_meta["vector_store"]["days_unchanged"].value == 1, "and rewrites nothing"
            checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
            assert checks == {"day_rows_match": True, "no_open_dead_letters": True}
    with db.connect(migrated) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT chunk_id) FROM chunks WHERE ingest_date = %s", (day,)).fetchone()
    assert total == distinct == chunks


def test_lost_database_connection_asks_dagster_to_retry(migrated, tmp_path) -> None:
    """A server that is not there (a restart, a failover) is retried, not failed outright."""
    from dagster import RetryRequested

    unreachable = PostgresResource(database_url=f"postgresql://postgres@/docvec?host={tmp_path}&connect_timeout=2")
    with pytest.raises(RetryRequested), unreachable.connect():
        pass
    with pytest.raises(RetryRequested), PostgresResource(home=str(migrated.home)).connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
