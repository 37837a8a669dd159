"""The retention window: partitions older than the window are detached and dropped whole; a sealed
block that straddles the window's edge is rebuilt from its days still inside it.

Dropping a partition is O(1) whatever its size: no table-wide DELETE, no bloat, and no pgvector index
repair (a DELETE of 1/30 of the rows forces the VACUUM that follows to repair a large share of an HNSW
graph: 73 s for 2,000 rows here). Rebuilding the straddling block costs one index build over the days
it keeps, never a graph repair. Each partition goes in its own transaction, so a crash leaves it
dropped, trimmed or as it was, and a rerun is a no-op.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pipeline.errors import ConfigError
from pipeline.storage import catalog, days, dead_letters, history, partitions
from pipeline.storage.layout import StoredPartition
from pipeline.storage.queries import one
from pipeline.storage.vector_indexes import ProgressLog, no_log

DEFAULT_WINDOW_DAYS = 30


def validate_window(window_days: int) -> int:
    if not isinstance(window_days, int) or isinstance(window_days, bool) or window_days < 1:
        raise ConfigError(
            f"retention window_days must be a whole number of days >= 1, got {window_days!r} "
            "(a window under one day would drop today's data)"
        )
    return window_days


def oldest_kept_day(today: dt.date, window_days: int) -> dt.date:
    """The window keeps ``window_days`` days, today included."""
    return today - dt.timedelta(days=validate_window(window_days) - 1)


def require_within_window(day: dt.date, today: dt.date, window_days: int) -> None:
    """Backfills of days the next retention run would drop are refused, not silently wasted."""
    horizon = oldest_kept_day(today, window_days)
    if day < horizon:
        raise ConfigError(
            f"{day} is older than the {window_days}-day retention window (oldest kept day: {horizon}); "
            "the next retention run would drop it. Raise the retention resource's window_days to keep it."
        )


@dataclass(frozen=True)
class Purged:
    """What retention removed from one partition: days ``first``..``last``; ``kept_as`` names the
    rebuilt block that holds the partition's days still inside the window (None: dropped whole)."""
    table: str
    first: dt.date
    last: dt.date
    rows: int
    bytes: int
    kept_as: str | None = None

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]


@dataclass
class RetentionResult:
    horizon: dt.date
    dropped: list[Purged] = field(default_factory=list)
    skipped_busy: list[dt.date] = field(default_factory=list)
    documents_deleted: int = 0
    dead_letters_deleted: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def days(self) -> list[dt.date]:
        return [day for purged in self.dropped for day in purged.days]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.dropped)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.dropped)


def expired_partitions(conn: psycopg.Connection[Any], today: dt.date, window_days: int) -> list[StoredPartition]:
    """Partitions holding at least one day older than the window."""
    horizon = oldest_kept_day(today, window_days)
    return [p for p in catalog.partitions(conn) if p.first < horizon]


def _expired(partition: StoredPartition, horizon: dt.date, rows: int = 0, freed: int = 0,
             kept_as: str | None = None) -> Purged:
    return Purged(partition.table, partition.first, min(partition.last, horizon - dt.timedelta(days=1)),
                  rows, freed, kept_as)


def _count(conn: psycopg.Connection[Any], table: str, before: dt.date) -> tuple[int, int]:
    """The partition's rows dated before ``before``, and all its rows, in one scan."""
    expired, total = one(conn, sql.SQL("SELECT count(*) FILTER (WHERE ingest_date < %s), count(*) FROM {}").format(
        sql.Identifier(table)), (before,))
    return int(expired), int(total)


def _purge(conn: psycopg.Connection[Any], partition: StoredPartition, horizon: dt.date,
           log: ProgressLog) -> Purged | None:
    """Drop the partition, or rebuild it from its days inside the window (keeping its kind of vector
    index). None when a day of it is being loaded right now, or the partition was replaced since it was
    listed (a seal grew it, a reload rebuilt it): the next run sees the new one."""
    with conn.transaction():
        if not partitions.claim(conn, [partition], partition.first, partition.last, wait=False):
            return None
        rows, _ = _count(conn, partition.table, horizon)
        if partition.last < horizon:
            partitions.drop(conn, partition)
            return _expired(partition, horizon, rows, partition.bytes)
        # Claimed above, so this rebuild's own claim re-takes locks this transaction already holds.
        kept_as = partitions.rebuild(conn, [partition], horizon, partition.last,
                                     partitions.same_index(catalog.index_spec_of(conn, partition.table)), log=log)
        if kept_as is None:
            return None
        freed = partition.bytes - catalog.relation_size(conn, kept_as)
    return _expired(partition, horizon, rows, max(0, freed), kept_as)


def apply_retention(conn: psycopg.Connection[Any], today: dt.date, window_days: int = DEFAULT_WINDOW_DAYS,
                    dry_run: bool = False, log: ProgressLog = no_log) -> RetentionResult:
    """Remove every day older than the window (and those days' documents and resolved dead letters). A
    partition with a day whose rebuild holds its lock right now is skipped and retried next run."""
    started = time.perf_counter()
    horizon = oldest_kept_day(today, window_days)
    result = RetentionResult(horizon=horizon, dry_run=dry_run)
    for partition in expired_partitions(conn, today, window_days):
        if dry_run:
            expired_rows, total = _count(conn, partition.table, horizon)
            if partition.last < horizon:
                result.dropped.append(_expired(partition, horizon, expired_rows, partition.bytes))
            else:  # a straddling block frees about its expired rows' share of its size
                result.dropped.append(_expired(partition, horizon, expired_rows,
                                               partition.bytes * expired_rows // max(1, total), kept_as="(rebuilt)"))
            continue
        purged = _purge(conn, partition, horizon, log)
        if purged is None:
            result.skipped_busy += _expired(partition, horizon).days
        else:
            result.dropped.append(purged)
    if dry_run:
        result.documents_deleted = int(one(conn, "SELECT count(*) FROM documents WHERE ingest_date < %s", (horizon,))[0])
        result.dead_letters_deleted = dead_letters.delete_resolved_before(conn, horizon, dry_run=True)
    else:
        with conn.transaction():
            result.documents_deleted = days.forget_before(conn, horizon, keep=result.skipped_busy)
            result.dead_letters_deleted = dead_letters.delete_resolved_before(conn, horizon)
            if not result.skipped_busy:  # as_of before the horizon is refused from now on
                history.record(conn, horizon, "days", result.documents_deleted, result.rows)
    result.seconds = time.perf_counter() - started
    return result


def days_older_than_window(conn: psycopg.Connection[Any], today: dt.date, window_days: int) -> list[dt.date]:
    """For the asset check: the days that should be gone and are not."""
    horizon = oldest_kept_day(today, window_days)
    return sorted(set(days.documents_before(conn, horizon)) | {d for p in expired_partitions(conn, today, window_days)
                                                                for d in _expired(p, horizon).days})

