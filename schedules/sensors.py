"""Sensors: new or changed day folders in the landing directory request that day's ingest run; a
configured embedding model that search does not serve yet requests the run that builds its vectors."""

import datetime as dt
import json

from dagster import (
    DefaultSensorStatus,
    RetryRequested,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets import daily_partitions
from pipeline.errors import DocvecError
from pipeline.ingest import deletions, permissions
from pipeline.storage import model_lifecycle, model_registry, retention
from resources import (
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from schedules.ingest import ingest_job


@sensor(job=ingest_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def landing_sensor(context: SensorEvaluationContext, source: SourceResource,
                   retention_window: RetentionResource) -> SensorResult:
    """Watches the landing zone (a directory or an object-storage prefix): a day folder that appears, or
    whose files change (names, sizes, inode and change times on disk; ETags or generations in a
    bucket), requests an ingest run of that day, from listings alone. Days outside the retention
    window or before the first partition are ignored. A collection (the source's collection mode) that
    changed requests a run of today, which snapshots it."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    today = retention_window.today()
    if source.source_mode() == "collection":
        return _collection_changes(source, today, seen, context.cursor)
    horizon = retention.oldest_kept_day(today, retention_window.window_days)
    first = dt.date.fromisoformat(daily_partitions.start.strftime("%Y-%m-%d"))
    try:
        landing = source.landing()
        days = landing.days()
        requests, current = [], {}
        for day in days:
            if day < max(horizon, first) or day > today:
                continue
            key = day.isoformat()
            # The day's deletion manifest and readers sidecar are part of its listing: landing one requests a run too.
            current[key] = deletions.listed_signature(landing.files(day, source.patterns), deletions.find(landing, day),
                                                      permissions.find_sidecar(landing, day))
            if seen.get(key) != current[key]:
                requests.append(RunRequest(partition_key=key, run_key=f"{key}:{current[key]}"))
    except DocvecError as exc:  # not there yet, unreachable, or refused: said, and tried again next tick
        return SensorResult(skip_reason=SkipReason(f"cannot list the landing zone: {exc}"), cursor=context.cursor)
    return SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))


def _collection_changes(source: SourceResource, today: dt.date, seen: dict[str, str],
                        cursor: str | None) -> SensorResult:
    """A collection changed since the last tick (its listing's names, sizes and stamps; no file is
    opened): one run of today's partition, which snapshots it."""
    try:
        landing = source.landing()
        signature = deletions.listed_signature(landing.files(today, source.patterns), None,
                                               permissions.find_sidecar(landing, today))
    except DocvecError as exc:  # not there, unreachable, or a listing that failed: said, tried again next tick
        return SensorResult(skip_reason=SkipReason(f"cannot list the collection: {exc}"), cursor=cursor)
    if seen.get("collection") == signature:
        return SensorResult(skip_reason=SkipReason("the collection is unchanged since the last run request"),
                            cursor=cursor)
    key = today.isoformat()
    return SensorResult(run_requests=[RunRequest(partition_key=key, run_key=f"collection:{key}:{signature}")],
                        cursor=json.dumps({"collection": signature}))


@sensor(job=ingest_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.RUNNING)
def embedding_model_sensor(context: SensorEvaluationContext, embedder: EmbedderResource,
                           postgres: PostgresResource) -> SensorResult | SkipReason:
    """When the configured embedding model (or backend) is not the one search serves, requests one run
    over the stored days that lack its vectors. That run builds the new model's vectors beside the
    served ones (a shadow set) and switches search to it once every stored day is covered; until then
    search keeps serving the old model. A model rolled back with `docvec model rollback` is left alone."""
    name, revision = embedder.identity()
    try:
        with postgres.connect() as conn:
            serving = model_registry.serving(conn)
            stored = model_registry.lookup(conn, name, revision)
            if serving is None or (serving.name, serving.revision) == (name, revision):
                return SkipReason(f"search serves the configured model {name}@{revision}" if serving else
                                  "nothing is stored yet")
            if stored is not None and stored.retired_at is not None:
                return SkipReason(f"{name}@{revision} was rolled back; search serves {serving.label}")
            missing = model_lifecycle.missing_days(conn, name, revision)
    except (DocvecError, RetryRequested) as exc:  # RetryRequested: the database is unreachable right now
        return SkipReason(f"cannot check the embedding models: {exc.__cause__ or exc}")
    if not missing:
        return SkipReason(f"{name}@{revision} covers every stored day; its next run switches search to it")
    first, last = missing[0].isoformat(), missing[-1].isoformat()
    context.log.info(f"{name}@{revision} lacks {len(missing)} stored days: requesting {first}...{last}")
    return SensorResult(run_requests=[RunRequest(
        run_key=f"shadow:{name}@{revision}:{first}:{last}:{len(missing)}",
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last,
              "docvec/shadow_model": f"{name}@{revision}"},
    )])
