"""The one partitioning scheme: one partition per ingest day (a ``YYYY-MM-DD/`` landing folder)."""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    BackfillPolicy,
    BetaWarning,
    DailyPartitionsDefinition,
)

# BackfillPolicy is documented and relied upon here; its "beta" label would otherwise print on every load.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

# end_offset=1: today's folder is a partition already, so the daily schedule and the sensor can ingest it.
daily_partitions = DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1, timezone="UTC")

# A range of days runs as one run: the model loads once, and each asset loops over the days.
single_run_backfill = BackfillPolicy.single_run()


def partition_days(context: AssetExecutionContext | AssetCheckExecutionContext) -> list[dt.date]:
    """The days of the run (one, or a range run as one)."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]


def checked_days(context: AssetCheckExecutionContext) -> list[dt.date] | None:
    """The days a check answers for: the run's, when it runs with an ingest run; None (every stored
    day) when it runs on its own."""
    partitioned = context.has_partition_key or context.has_partition_key_range
    return partition_days(context) if partitioned else None
