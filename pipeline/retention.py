"""The retention window: whole day partitions older than the window are detached and dropped.

Dropping a partition is O(1) whatever its size: no table-wide DELETE, no bloat, and no pgvector index
repair (a DELETE of 1/30 of the rows forces the VACUUM that follows to repair a large share of an HNSW
graph every day). Each day goes in its own transaction, so a crash leaves whole days dropped or kept,
and a rerun is a no-op.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from pipeline.errors import ConfigError
from pipeline.store import DAY_LOCK

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
class DayPartition:
    day: dt.date
    table: str
    rows: int
    bytes: int


@dataclass
class RetentionResult:
    horizon: dt.date
    dropped: list[DayPartition] = field(default_factory=list)
    skipped_busy: list[dt.date] = field(default_factory=list)
    documents_deleted: int = 0
    dead_letters_deleted: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.dropped)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.dropped)


def day_partitions(conn: psycopg.Connection) -> list[DayPartition]:
    """Every day partition of ``chunks`` with its (estimated after ANALYZE) rows and size, oldest first."""
    rows = conn.execute(
        """
        SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'chunks'::regclass
        ORDER BY c.relname
        """
    ).fetchall()
    partitions = []
    for name, tuples, size in rows:
        try:
            day = dt.datetime.strptime(name, "chunks_%Y%m%d").date()
        except ValueError:
            continue  # not one of ours: never touched
        partitions.append(DayPartition(day=day, table=name, rows=int(tuples), bytes=int(size)))
    return partitions


def expired_days(conn: psycopg.Connection, today: dt.date, window_days: int) -> list[DayPartition]:
    horizon = oldest_kept_day(today, window_days)
    return [p for p in day_partitions(conn) if p.day < horizon]


def apply_retention(conn: psycopg.Connection, today: dt.date, window_days: int = DEFAULT_WINDOW_DAYS,
                    dry_run: bool = False) -> RetentionResult:
    """Drop every day partition older than the window (and those days' documents and resolved dead
    letters). A day whose rebuild holds its lock right now is skipped and retried next run."""
    started = time.perf_counter()
    horizon = oldest_kept_day(today, window_days)
    result = RetentionResult(horizon=horizon, dry_run=dry_run)
    for partition in expired_days(conn, today, window_days):
        if dry_run:
            result.dropped.append(partition)
            continue
        with conn.transaction():
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (DAY_LOCK, partition.day.toordinal())).fetchone()[0]
            if not got:
                result.skipped_busy.append(partition.day)
                continue
            exact_rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partition.table))).fetchone()[0]
            conn.execute(sql.SQL("ALTER TABLE chunks DETACH PARTITION {}").format(sql.Identifier(partition.table)))
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition.table)))
        result.dropped.append(DayPartition(partition.day, partition.table, int(exact_rows), partition.bytes))
    if dry_run:
        result.documents_deleted = conn.execute(
            "SELECT count(*) FROM documents WHERE ingest_date < %s", (horizon,)).fetchone()[0]
        result.dead_letters_deleted = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE ingest_date < %s AND resolved_at IS NOT NULL", (horizon,)).fetchone()[0]
    else:
        with conn.transaction():
            busy = list(result.skipped_busy)
            result.documents_deleted = conn.execute(
                "DELETE FROM documents WHERE ingest_date < %s AND NOT (ingest_date = ANY(%s))", (horizon, busy)).rowcount
            conn.execute("DELETE FROM ingest_days WHERE ingest_date < %s AND NOT (ingest_date = ANY(%s))",
                         (horizon, busy))
            # Open dead letters stay: they are problems someone still has to look at.
            result.dead_letters_deleted = conn.execute(
                "DELETE FROM dead_letters WHERE ingest_date < %s AND resolved_at IS NOT NULL", (horizon,)).rowcount
    result.seconds = time.perf_counter() - started
    return result


def days_older_than_window(conn: psycopg.Connection, today: dt.date, window_days: int) -> list[dt.date]:
    """For the asset check: the days that should be gone and are not."""
    horizon = oldest_kept_day(today, window_days)
    rows = conn.execute("SELECT DISTINCT ingest_date FROM documents WHERE ingest_date < %s", (horizon,)).fetchall()
    return sorted({p.day for p in expired_days(conn, today, window_days)} | {r[0] for r in rows})

