"""Sealing: merging days that no longer change into multi-day blocks, each built with the vector index
the policy wants for its rows (see pipeline/storage/layout.py for why and when)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.indexing.builds import policy_index
from pipeline.indexing.policy import IndexSettings
from pipeline.storage import catalog, layout, partitions
from pipeline.storage.layout import LayoutSettings
from pipeline.storage.vector_indexes import ProgressLog, no_log


@dataclass(frozen=True)
class SealOutcome:
    merged: tuple[str, ...]
    partition: str | None  # None: the partitions changed while waiting for their locks; next run retries
    rows: int
    seconds: float


def seal_days(conn: psycopg.Connection[Any], today: dt.date, oldest_kept: dt.date, settings: LayoutSettings,
              index_settings: IndexSettings, log: ProgressLog = no_log) -> list[SealOutcome]:
    """Carry out every merge ``layout.plan_sealing`` asks for; a no-op when the layout is current."""
    outcomes = []
    for group in layout.plan_sealing(catalog.partitions(conn), today, oldest_kept, settings):
        first, last = group[0].first, group[-1].last
        names = tuple(p.table for p in group)
        log(f"sealing {', '.join(names)} into {layout.partition_name(first, last)}")
        started = time.perf_counter()
        partition = partitions.rebuild(conn, group, first, last, policy_index(index_settings), log=log)
        # The rebuild ends with ANALYZE, so the catalog's row count is exact: no second scan of the block.
        merged = catalog.partition_for(conn, first) if partition else None
        outcomes.append(SealOutcome(names, partition, merged.rows if merged else 0, time.perf_counter() - started))
    return outcomes
