"""Sensors: new or changed day folders in the landing directory request that day's ingest run."""

import datetime as dt
import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from assets.partitions import daily_partitions
from pipeline import retention, sources
from resources import RetentionResource, SourceResource
from schedules.ingest import ingest_job


@sensor(job=ingest_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def landing_sensor(context: SensorEvaluationContext, source: SourceResource,
                   retention_window: RetentionResource) -> SensorResult:
    """Watches the landing directory: a day folder that appears, or whose files change (names, sizes,
    modification times), requests an ingest run of that day. Days outside the retention window or
    before the first partition are ignored."""
    root = source.root()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    today = retention_window.today()
    horizon = retention.oldest_kept_day(today, retention_window.window_days)
    first = dt.date.fromisoformat(daily_partitions.start.strftime("%Y-%m-%d"))
    requests, current = [], {}
    for day in sources.list_days(root) if root.is_dir() else []:
        if day < max(horizon, first) or day > today:
            continue
        key = day.isoformat()
        current[key] = sources.day_signature(root, day, source.patterns)
        if seen.get(key) != current[key]:
            requests.append(RunRequest(partition_key=key, run_key=f"{key}:{current[key]}"))
    return SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))
