"""The daily ingest job and its schedule (built from the partitioned job, so each tick targets a day)."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

INGEST_GROUP = "ingest"

ingest_job = define_asset_job(
    "ingest_daily",
    selection=AssetSelection.groups(INGEST_GROUP),
    description="Read, chunk, embed and load one ingest day (or a range of days in one run).",
)

# 00:30 UTC: today's partition exists from midnight (end_offset=1); files landing later in the day are
# picked up by a rerun or the next tick's backfill. Stopped by default: switch it on in the UI.
ingest_schedule = build_schedule_from_partitioned_job(
    ingest_job,
    name="ingest_daily_schedule",
    hour_of_day=0,
    minute_of_hour=30,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Ingest today's landing folder every day at 00:30 UTC.",
)
