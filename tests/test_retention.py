"""Retention with a fixed clock: whole days beyond the window are dropped, nothing else."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from dagster import DagsterInstance, build_schedule_context, materialize
from pydantic import ValidationError

from assets import raw_documents, retention, with_checks
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.storage import catalog, connections, days, model_registry, partitions, urls
from pipeline.storage import retention as engine
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support.databases import fresh_database
from tests.support.vectors import synthetic_day

TODAY = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def forty_days(migrated: Settings, embedder) -> Settings:
    """A database of its own holding 40 small day partitions ending at TODAY, with real vectors."""
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_retention_probe")
    texts = ["retention keeps thirty days", "old days are dropped whole", "partitions make it cheap"]
    vectors = embedder.encode(texts)
    with connections.connect(isolated) as conn:
        model_id = model_registry.register(conn, embedder.info).id
        for back in range(40):
            day = TODAY - dt.timedelta(days=back)
            days.replace_day(conn, synthetic_day(day, vectors, embedder.info.name, embedder.info.revision,
                                                  texts=texts), model_id)
        conn.execute("INSERT INTO dead_letters (source_uri, ingest_date, stage, error, resolved_at) VALUES "
                     "('old/fixed.txt', %s, 'read', 'was bad', now()), ('old/open.txt', %s, 'read', 'still bad', NULL)",
                     (TODAY - dt.timedelta(days=35), TODAY - dt.timedelta(days=35)))
    return isolated


def partition_days(settings: Settings) -> list[dt.date]:
    with connections.connect(settings) as conn:
        return [p.first for p in catalog.partitions(conn)]


def test_window_arithmetic() -> None:
    assert engine.oldest_kept_day(TODAY, 30) == TODAY - dt.timedelta(days=29)
    assert engine.oldest_kept_day(TODAY, 1) == TODAY
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ConfigError, match=">= 1"):
            engine.validate_window(bad)  # type: ignore[arg-type]


def test_dry_run_then_retention_keeps_exactly_thirty_days(forty_days: Settings) -> None:
    assert len(partition_days(forty_days)) == 40
    with connections.connect(forty_days) as conn:
        preview = engine.apply_retention(conn, TODAY, 30, dry_run=True)
    assert preview.days == [TODAY - dt.timedelta(days=b) for b in range(39, 29, -1)]
    assert len(partition_days(forty_days)) == 40, "a dry run drops nothing"

    with connections.connect(forty_days) as conn:
        result = engine.apply_retention(conn, TODAY, 30)
        assert result.rows == 30 and len(result.dropped) == 10
        assert result.documents_deleted == 30 and result.dead_letters_deleted == 1  # 3 documents a day
        assert conn.execute("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL").fetchone()[0] == 1
        assert engine.days_older_than_window(conn, TODAY, 30) == []
        assert conn.execute("SELECT min(ingest_date), count(*) FROM chunks").fetchone() == (
            TODAY - dt.timedelta(days=29), 90)
    kept = partition_days(forty_days)
    assert kept == [TODAY - dt.timedelta(days=b) for b in range(29, -1, -1)]

    with connections.connect(forty_days) as conn:
        again = engine.apply_retention(conn, TODAY, 30)
    assert again.dropped == [] and partition_days(forty_days) == kept, "rerunning is a no-op"


def test_a_day_being_ingested_is_skipped_then_dropped(forty_days: Settings) -> None:
    later = TODAY + dt.timedelta(days=1)  # makes TODAY-29 expire
    target = TODAY - dt.timedelta(days=29)
    with psycopg.connect(urls.docvec_url(forty_days), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (partitions.DAY_LOCK, target.toordinal()))
        with connections.connect(forty_days) as conn:
            result = engine.apply_retention(conn, later, 30)
        assert result.skipped_busy == [target] and result.dropped == []
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", (partitions.DAY_LOCK, target.toordinal()))
    with connections.connect(forty_days) as conn:
        result = engine.apply_retention(conn, later, 30)
    assert result.days == [target]


def test_retention_asset_and_its_check(forty_days: Settings, tmp_path) -> None:
    later = TODAY + dt.timedelta(days=2)
    resources = {"postgres": PostgresResource(database_url=forty_days.database_url),
                 "retention_window": RetentionResource(as_of=later.isoformat()),
                 "source": SourceResource(landing_dir=str(tmp_path))}  # day folders: whole days go
    result = materialize(with_checks(retention), resources=resources)
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["retention_horizon"].value == str(later - dt.timedelta(days=29))
    assert meta["window_days"].value == 30
    [check] = result.get_asset_check_evaluations()
    assert check.passed
    assert min(partition_days(forty_days)) == later - dt.timedelta(days=29)


def test_retention_schedule_requests_a_run() -> None:
    from pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("retention_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 1 * * *", "UTC")
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance,
                                         scheduled_execution_time=dt.datetime(2026, 6, 30, 1, 15, tzinfo=dt.UTC))
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert len(requests) == 1 and requests[0].job_name in (None, "enforce_retention")


def test_backfilling_a_day_older_than_the_window_is_refused(migrated: Settings, tmp_path) -> None:
    resources = {"source": SourceResource(landing_dir=str(tmp_path)),
                 "postgres": PostgresResource(), "embedder": EmbedderResource(),
                 "retention_window": RetentionResource(as_of=TODAY.isoformat()),
                 "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "b"))}
    old = TODAY - dt.timedelta(days=45)
    result = materialize([raw_documents], resources=resources, partition_key=old.isoformat(), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "older than the 30-day retention window" in failure and "window_days" in failure


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown timezone"):
        RetentionResource(timezone="Mars/Olympus")
