"""The one partitioning scheme: one partition per ingest day (a ``YYYY-MM-DD/`` landing folder)."""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import (
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


def partition_days(context: AssetExecutionContext) -> list[dt.date]:
    return [dt.date.fromisoformat(key) for key in context.partition_keys]
