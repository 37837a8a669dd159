"""The Dagster layer: definitions load, the DAG materializes a day against the real server and model."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetSelection,
    DagsterInstance,
    Definitions,
    build_schedule_context,
    materialize,
)

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store, with_checks
from pipeline.definitions import defs
from pipeline.storage import connections
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support.databases import fresh_database
from tests.support.sample import SAMPLE_END, day_folder

ASSETS = with_checks(raw_documents, document_chunks, chunk_embeddings, vector_store)
CHECKS = {"vector_store:day_rows_match", "vector_store:no_open_dead_letters", "vector_index:recall_at_10",
          "vector_index:index_valid", "vector_index:vectors_sane", "vector_index:retrieval_quality",
          "retention:nothing_older_than_window"}


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)  # what the code server does: names unique, jobs resolvable
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert keys == {"raw_documents", "document_chunks", "chunk_embeddings", "vector_store", "vector_index", "retention"}
    job = defs.resolve_job_def("ingest_daily")
    assert job.partitions_def is not None
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, f"{spec.key} has a docstring"
        assert spec.owners and spec.group_name in {"ingest", "maintenance"}


@pytest.mark.parametrize("location", ["pipeline.definitions", "deploy.celery.definitions",
                                      "deploy.celery.gpu_definitions", "deploy.kubernetes.definitions"])
def test_every_code_location_has_the_checks_and_runs_them_with_the_ingest_job(location) -> None:
    """Checks are @asset_checks of their own (one property each), registered wherever the assets are."""
    located = importlib.import_module(location).defs
    graph = located.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.asset_check_keys} == CHECKS
    ingest = {node.name for node in located.resolve_job_def("ingest_daily").nodes}
    assert {"vector_store_day_rows_match", "vector_index_retrieval_quality"} <= ingest, "an ingest run checks too"


def test_daily_schedule_targets_the_days_partition() -> None:
    schedule = defs.resolve_schedule_def("ingest_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 0 * * *", "UTC")
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 3, 7, 0, 30, tzinfo=dt.UTC))
        [request] = list(schedule.evaluate_tick(context).run_requests or [])
    assert request.partition_key == "2026-03-07"


@pytest.fixture()
def day_store(migrated, embedder):
    """A store of this module's own: the sample's last day, loaded again through the assets with their
    own recipe, would replace the session store's copy that other tests search."""
    return fresh_database(migrated, embedder.info.dim, "docvec_definitions_end_to_end")


@pytest.fixture()
def resources(day_store, sample_landing, tmp_path):
    return {
        "postgres": PostgresResource(database_url=day_store.database_url),
        "embedder": EmbedderResource(),
        "source": SourceResource(landing_dir=str(sample_landing)),
        "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
        "retention_window": RetentionResource(as_of=SAMPLE_END.isoformat()),
    }


def test_materialize_one_day_end_to_end(resources, day_store) -> None:
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
                assert store_meta["raw_documents"]["days_unchanged"].value == 1, "decided once, where files are read"
                assert store_meta["raw_documents"]["days_not_read"].value == 1, "from the listing alone"
                assert store_meta["chunk_embeddings"]["embedded"].value == 0, "an unchanged rerun embeds nothing"
                assert store_meta["vector_store"]["days_unchanged"].value == 1, "and rewrites nothing"
            checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
            assert checks == {"day_rows_match": True, "no_open_dead_letters": True}
    with connections.connect(day_store) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT chunk_id) FROM chunks WHERE ingest_date = %s", (day,)).fetchone()
    assert total == distinct == chunks


def test_the_store_checks_answer_from_the_database_and_can_fail(migrated, embedder, tmp_path) -> None:
    """day_rows_match compares the rows a day holds with what its load recorded, whoever changed them:
    a row removed behind the store's back fails it, for the run's day and when it runs on its own."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_store_checks")
    day = SAMPLE_END
    folder = day_folder(tmp_path / "landing", day)
    for i in range(3):
        (folder / f"note-{i}.md").write_text(f"Note {i} on how the lighthouse keeper logs the tides, day {i}.")
    (folder / "locked.pdf").write_bytes(b"%PDF-1.7 not really a pdf")
    resources = {"postgres": PostgresResource(database_url=isolated.database_url), "embedder": EmbedderResource(),
                 "source": SourceResource(landing_dir=str(tmp_path / "landing")),
                 "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
                 "retention_window": RetentionResource(as_of=day.isoformat())}

    def checks(result) -> dict:
        return {c.check_name: c for c in result.get_asset_check_evaluations()}

    found = checks(materialize(ASSETS, resources=resources, partition_key=day.isoformat()))
    assert found["day_rows_match"].passed
    letters = found["no_open_dead_letters"]
    assert not letters.passed and letters.severity == AssetCheckSeverity.WARN
    assert any("locked.pdf" in letter for letter in letters.metadata["open_dead_letters"].value)
    with connections.connect(isolated) as conn:
        conn.execute("DELETE FROM chunks WHERE ctid IN (SELECT ctid FROM chunks WHERE ingest_date = %s LIMIT 1)", (day,))
    # The checks on their own (as from the UI): every day the configured model loaded.
    alone = checks(materialize(ASSETS, resources=resources, selection=AssetSelection.checks_for_assets(vector_store)))
    rows = alone["day_rows_match"]
    assert not rows.passed and rows.metadata["mismatched_days"].value == {str(day): {"in_table": 2, "recorded": 3}}


def test_lost_database_connection_asks_dagster_to_retry(migrated, tmp_path) -> None:
    """A server that is not there (a restart, a failover) is retried, not failed outright."""
    from dagster import RetryRequested

    unreachable = PostgresResource(database_url=f"postgresql://postgres@/docvec?host={tmp_path}&connect_timeout=2")
    with pytest.raises(RetryRequested), unreachable.connect():
        pass
    with pytest.raises(RetryRequested), PostgresResource(home=str(migrated.home)).connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
