"""The upkeep of the vector indexes after a run's days were loaded, and what it did: days that no
longer change are sealed into blocks, then each partition holding one of the run's days gets the
index the policy decides for it, and its recall is known (``builds.index_recall``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.ops.reports import LogLines, Metadata
from pipeline.storage import catalog, layout, retention
from pipeline.storage.layout import LayoutSettings, StoredPartition


@dataclass(frozen=True)
class IndexUpkeepReport:
    """What ``upkeep_indexes`` did: the seals, and each partition's index outcome and recall."""
    sealed: list[sealing.SealOutcome]
    partitions: list[builds.PartitionUpkeep]

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        outcomes = [kept.outcome for kept in self.partitions]
        recalls = [kept.recall_at_10 for kept in self.partitions if kept.recall_at_10 is not None]
        return {
            "partitions": len(outcomes),
            "indexed_partitions": sum(1 for o in outcomes if o.index_name),
            "exact_scan_partitions": sum(1 for o in outcomes if not o.index_name),
            "sealed": {o.partition or "(retry next run)": list(o.merged) for o in self.sealed},
            "seal_seconds": round(sum(o.seconds for o in self.sealed), 3),
            "sealed_without_expired_days": {o.partition: f"{o.left_out[0]}..{o.left_out[1]}"
                                            for o in self.sealed if o.partition and o.left_out},
            "actions": {o.partition: f"{o.plan.action.value} {o.plan.kind.value}: {o.plan.reason}" for o in outcomes},
            "index_kinds": ", ".join(sorted({o.plan.kind.value for o in outcomes})) or "none",
            "rows": sum(o.rows for o in outcomes),
            "build_seconds": round(sum(o.build_seconds for o in outcomes), 3),
            "index_bytes": sum(o.size_bytes for o in outcomes),
            "min_recall_at_10": round(min(recalls), 4) if recalls else 1.0,
        }


def partitions_holding(conn: psycopg.Connection, days: Sequence[dt.date] | None) -> list[StoredPartition]:
    """The partitions that hold any of ``days`` (a sealed block once, however many of them it holds);
    every partition when ``days`` is None."""
    stored = catalog.partitions(conn)
    if days is None:
        return stored
    held = {p.table: p for p in (layout.holding(stored, day) for day in days) if p}
    return list(held.values())


def upkeep_indexes(conn: psycopg.Connection, days: Sequence[dt.date], settings: IndexSettings,
                   layout_settings: LayoutSettings, *, today: dt.date, window_days: int, recall_samples: int = 20,
                   pooled: bool = False, day_folders: bool = False, log: LogLines) -> IndexUpkeepReport:
    """Seal what the layout asks for, then keep the index of every partition holding one of ``days``
    as the policy wants it. ``pooled``: the connection goes through a transaction pooler.
    ``day_folders``: the source is day folders, whose days retention drops whole, so a seal of the
    window's one block (``window_block``) leaves out the days already past the window
    (see ``sealing.seal_days``)."""
    oldest_kept = retention.oldest_kept_day(today, window_days)
    sealed = sealing.seal_days(conn, today, oldest_kept, layout_settings, settings, log=log,
                               leave_out_expired=day_folders and layout_settings.window_block)
    held = partitions_holding(conn, days)
    if not held:
        log("no partition holds the run's days (nothing loaded), nothing to index")
    kept = [builds.upkeep(conn, p.table, settings, recall_samples=recall_samples, log=log, pooled=pooled) for p in held]
    return IndexUpkeepReport(sealed, [k for k in kept if k is not None])
