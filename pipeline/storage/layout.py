"""How ``chunks`` is cut into partitions, and when days are sealed into multi-day blocks.

A day is loaded into its own partition (``chunks_YYYYMMDD``): reruns swap it whole, cheaply, while
files for it may still arrive. Once a day is older than ``seal_after_days`` (0: every day but today) it
is sealed: merged with the other sealed days of its aligned block of ``block_days``
(``chunks_YYYYMMDD_YYYYMMDD``, first and last day) into one partition with one vector index (a partition
that dwarfs the rest of its block, like a living collection's first snapshot, is left out rather than
rewritten for a few days of changes). A search then walks a handful of indexes instead of one per day
(30 per-day HNSW indexes cost 62 ms p50 at 1M rows against 9.5 ms for one: see benchmarks/RESULTS.md),
and retention still drops whole partitions, rebuilding only the one block that straddles the window's
edge. Blocks are aligned to fixed dates, so the layout follows from the stored days alone and every run
plans the same merges.

``window_block`` trades daily work for search speed: every sealed day of the retention window goes into
one block, rebuilt each day a day seals into it, so a search walks two graphs with ``seal_after_days``
0 (the block and today's day) instead of one per aligned block and open day. Each seal is then one
index build over the whole window (in day-folder mode it also leaves out the days that fell out of the
window, so retention has no block of its own to rebuild when the seal comes first).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from itertools import groupby

from pipeline.errors import ConfigError

_NAME = re.compile(r"^chunks_(\d{8})(?:_(\d{8}))?$")
_EPOCH = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class LayoutSettings:
    block_days: int = 10
    seal_after_days: int = 2
    window_block: bool = False  # one block for every sealed day of the window; block_days is then unused

    def __post_init__(self) -> None:
        if not 1 <= self.block_days <= 366:
            raise ConfigError(f"block_days must be 1..366 (1 keeps one partition per day), got {self.block_days}")
        if self.seal_after_days < 0:
            raise ConfigError("seal_after_days must be >= 0 (0: only today's day stays open), "
                              f"got {self.seal_after_days}")


@dataclass(frozen=True)
class StoredPartition:
    table: str
    first: dt.date
    last: dt.date  # inclusive
    rows: int  # the planner's estimate (exact after the ANALYZE every load ends with)
    bytes: int

    @property
    def is_block(self) -> bool:
        return self.last > self.first

    def covers(self, day: dt.date) -> bool:
        return self.first <= day <= self.last


def partition_name(first: dt.date, last: dt.date | None = None) -> str:
    if last is None or last == first:
        return f"chunks_{first:%Y%m%d}"
    return f"chunks_{first:%Y%m%d}_{last:%Y%m%d}"


def staging_name(first: dt.date, last: dt.date) -> str:
    return partition_name(first, last).replace("chunks_", "chunks_stage_", 1)


def parse_partition_name(name: str) -> tuple[dt.date, dt.date] | None:
    match = _NAME.match(name)
    if match is None:
        return None
    first = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    last = dt.datetime.strptime(match.group(2), "%Y%m%d").date() if match.group(2) else first
    return first, last


def holding(stored: list[StoredPartition], day: dt.date) -> StoredPartition | None:
    """The partition among ``stored`` that holds ``day``: its own, or the sealed block it is in."""
    return next((p for p in stored if p.covers(day)), None)


def aligned_block(day: dt.date, block_days: int) -> tuple[dt.date, dt.date]:
    """The fixed block of ``block_days`` days that ``day`` belongs to."""
    start = _EPOCH + (day.toordinal() - _EPOCH) // block_days * block_days
    return dt.date.fromordinal(start), dt.date.fromordinal(start + block_days - 1)


def sealed_before(today: dt.date, settings: LayoutSettings) -> dt.date:
    """Days before this one are sealed: late files for them are no longer expected. Today is never
    sealed, whatever ``seal_after_days``: its files are still landing."""
    return today - dt.timedelta(days=settings.seal_after_days)


def plan_sealing(stored: list[StoredPartition], today: dt.date, oldest_kept: dt.date,
                 settings: LayoutSettings) -> list[list[StoredPartition]]:
    """Groups of partitions to merge, each into one block spanning the group: sealed partitions that
    share an aligned block, when there are at least two of them. Partitions wholly older than
    ``oldest_kept`` are retention's to drop, not worth a merge; a partition that spans two aligned
    blocks (``block_days`` was changed since) is left as it is rather than split. With ``window_block``:
    every sealed partition still in the window, as one group, once a second one joins the first."""
    horizon = sealed_before(today, settings)
    if settings.window_block:
        # No alignment and no dominant partition left out: the point is one graph for the whole window.
        window = [p for p in stored if oldest_kept <= p.last < horizon]
        return [window] if len(window) > 1 else []
    if settings.block_days == 1:
        return []
    candidates = [p for p in stored if oldest_kept <= p.last < horizon
                  and aligned_block(p.first, settings.block_days) == aligned_block(p.last, settings.block_days)]
    groups = []
    for _, members in groupby(candidates, key=lambda p: aligned_block(p.first, settings.block_days)):
        groups += [run for run in _without_dominant(list(members), settings.block_days) if len(run) > 1]
    return groups


def _without_dominant(group: list[StoredPartition], factor: int) -> list[list[StoredPartition]]:
    """``group`` in runs of neighbouring partitions, leaving out any that holds more than ``factor`` times
    the rows of the rest of the group: merging it would rewrite far more than the seal adds. A living
    collection's first snapshot is such a partition (the whole collection beside days of changes): merged
    every day, it would cost a rewrite of the collection a day. With ``factor`` = ``block_days``, a block of
    days of like size is never left out, and what a seal rewrites stays within ``factor`` times what it adds."""
    runs: list[list[StoredPartition]] = [[]]
    total = sum(p.rows for p in group)
    for partition in group:
        if partition.rows > factor * (total - partition.rows):
            runs.append([])
        else:
            runs[-1].append(partition)
    return runs
