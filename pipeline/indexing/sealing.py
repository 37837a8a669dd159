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
from pipeline.storage import catalog, history, layout, partitions, term_stats
from pipeline.storage.layout import LayoutSettings
from pipeline.storage.vector_indexes import ProgressLog, no_log


@dataclass(frozen=True)
class SealOutcome:
    merged: tuple[str, ...]
    partition: str | None  # None: the partitions changed while waiting for their locks; next run retries
    rows: int
    seconds: float
    left_out: tuple[dt.date, dt.date] | None = None  # expired days not carried into the block (first, last)


def seal_days(conn: psycopg.Connection[Any], today: dt.date, oldest_kept: dt.date, settings: LayoutSettings,
              index_settings: IndexSettings, log: ProgressLog = no_log, *,
              leave_out_expired: bool = False) -> list[SealOutcome]:
    """Carry out every merge ``layout.plan_sealing`` asks for; a no-op when the layout is current.

    ``leave_out_expired`` (day folders with ``window_block``, where retention drops whole days and would
    otherwise rebuild the whole window's block again for one day): a merged partition's days older than
    ``oldest_kept`` are not carried into the new block. In the same transaction their term statistics go
    and the history horizon moves to ``oldest_kept`` (a search as of a day left out is refused, as after
    retention); their documents, load records and dead letters stay retention's (a day no partition
    covers counts as not stored). Never for a collection, whose old days hold live documents."""
    outcomes = []
    for group in layout.plan_sealing(catalog.partitions(conn), today, oldest_kept, settings):
        first = max(group[0].first, oldest_kept) if leave_out_expired else group[0].first
        last = group[-1].last
        left_out = (group[0].first, first - dt.timedelta(days=1)) if first > group[0].first else None
        names = tuple(p.table for p in group)
        log(f"sealing {', '.join(names)} into {layout.partition_name(first, last)}"
            + (f" (days {left_out[0]}..{left_out[1]} left out: older than the retention window)" if left_out else ""))
        started = time.perf_counter()
        with conn.transaction():
            partition = partitions.rebuild(conn, group, first, last, policy_index(index_settings), log=log)
            if partition and left_out:
                history.record(conn, first, "days", 0, term_stats.forget_days(conn, *left_out))
        # The rebuild ends with ANALYZE, so the catalog's row count is exact: no second scan of the block.
        merged = catalog.partition_for(conn, first) if partition else None
        outcomes.append(SealOutcome(names, partition, merged.rows if merged else 0, time.perf_counter() - started,
                                    left_out if partition else None))
    return outcomes
