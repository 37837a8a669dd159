"""History: versions of documents that are no longer live (superseded by a later version, or deleted
by a tombstone), and the ``history_purges`` table that records how far back it is kept. Search as of
a day (``as_of``) reads history; retention purges it.

In a collection, the window keeps history, never a live document: a version is purged once it stopped
being live on or before the window's first day (so search as of any day inside the window still finds
what was live then), whatever the age of the partition it is in. Purging deletes its rows where they
are (O(rows purged): a partition holding the collection's first snapshot is never rewritten for the
few documents that changed); a partition whose purged rows reach ``COMPACT_SHARE`` of it is rebuilt
from its remaining rows, so the space comes back in amortised O(changes); one left empty is dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from pipeline.storage import catalog, erasure, ingest_days, partitions, tombstones
from pipeline.storage.layout import StoredPartition
from pipeline.storage.queries import value

COMPACT_SHARE = 0.25  # rebuild a partition once this share of the rows it was built with were purged
_PURGED_KEY = "docvec_purged_rows"  # in the partition's table comment: rows purged since it was built

# Versions dated before the horizon that were no longer live on the horizon day: a later version, or a
# tombstone on or after them, dated on or before it.
_PURGEABLE = """
    SELECT d.doc_id, d.ingest_date FROM documents d
    WHERE d.ingest_date < %(horizon)s
      AND (EXISTS (SELECT 1 FROM documents n WHERE n.doc_id = d.doc_id
                   AND n.ingest_date > d.ingest_date AND n.ingest_date <= %(horizon)s)
           OR EXISTS (SELECT 1 FROM document_deletions t WHERE t.doc_id = d.doc_id
                      AND t.ingest_date >= d.ingest_date AND t.ingest_date <= %(horizon)s))
"""


@dataclass
class HistoryPurge:
    """What purging history before ``horizon`` removed (or, in a dry run, would remove)."""
    horizon: dt.date
    versions: int = 0
    chunks: int = 0
    tombstones: int = 0
    compacted: list[str] = field(default_factory=list)  # partitions rebuilt from their remaining rows
    dropped: list[str] = field(default_factory=list)  # partitions of days before the horizon left empty
    dry_run: bool = False


def horizon(conn: psycopg.Connection[Any]) -> dt.date | None:
    """The oldest day whose state the store still holds in full: retention purged history from before
    it (None while nothing was ever purged)."""
    found = value(conn, "SELECT max(horizon) FROM history_purges")
    return found if isinstance(found, dt.date) else None


def record(conn: psycopg.Connection[Any], horizon_day: dt.date, mode: Literal["days", "collection"], versions: int,
           chunks: int) -> None:
    """Note that history before ``horizon_day`` is gone (a retention run's purge or drop)."""
    conn.execute("INSERT INTO history_purges (horizon, mode, versions, chunks) VALUES (%s, %s, %s, %s)",
                 (horizon_day, mode, versions, chunks))


def purgeable(conn: psycopg.Connection[Any], horizon_day: dt.date) -> list[tuple[str, dt.date]]:
    """The versions ``purge`` would remove: (doc_id, day), oldest first."""
    return [(str(d), day) for d, day in conn.execute(_PURGEABLE + " ORDER BY 2, 1", {"horizon": horizon_day})]


def purge(conn: psycopg.Connection[Any], horizon_day: dt.date, *, dry_run: bool = False) -> HistoryPurge:
    """Remove every version that stopped being live on or before ``horizon_day`` (its chunks, every
    model's, its ``documents`` row, its share of the term statistics), the tombstones that no longer
    hide anything, and the emptied days' records; then compact or drop the partitions it thinned."""
    result = HistoryPurge(horizon_day, dry_run=dry_run)
    if dry_run:
        versions = purgeable(conn, horizon_day)
        result.versions = len(versions)
        result.chunks = int(value(conn, "SELECT count(*) FROM chunks c JOIN (" + _PURGEABLE + ") p "
                                  "ON p.doc_id = c.doc_id AND p.ingest_date = c.ingest_date", {"horizon": horizon_day}))
        return result
    with conn.transaction():
        # The purged versions' days locked first, as ``docvec forget`` does: a seal that copies their
        # partition waits, so it never carries purged rows over into a new block.
        versions = purgeable(conn, horizon_day)
        for day in sorted({day for _, day in versions}):
            partitions.lock_days(conn, day, day)
        versions = purgeable(conn, horizon_day)
        conn.execute("CREATE TEMPORARY TABLE purged_versions (doc_id text, ingest_date date) ON COMMIT DROP")
        conn.execute("INSERT INTO purged_versions SELECT * FROM unnest(%s::text[], %s::date[])",
                     ([d for d, _ in versions], [day for _, day in versions]))
        thinned = _rows_per_partition(conn)
        per_model, _ = erasure.delete_chunks(conn, sql.SQL(
            "(doc_id, ingest_date) IN (SELECT doc_id, ingest_date FROM purged_versions)"), {})
        conn.execute("DELETE FROM documents d USING purged_versions p "
                     "WHERE d.doc_id = p.doc_id AND d.ingest_date = p.ingest_date")
        result.versions, result.chunks = len(versions), sum(per_model.values())
        result.tombstones = tombstones.forget_before(conn, horizon_day)
        days = sorted({day for _, day in versions})
        erasure.forget_days(conn, days)  # counts of the thinned days, which are never read again
        ingest_days.forget_empty_before(conn, horizon_day)
        record(conn, horizon_day, "collection", result.versions, result.chunks)
        conn.execute("ANALYZE documents")
        _note_purged(conn, thinned)
    for table in thinned:
        _compact_or_drop(conn, table, horizon_day, result)
    return result


def _rows_per_partition(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The partitions the purged versions' chunks are in, and how many of those chunks each holds."""
    return {str(t): int(n) for t, n in conn.execute(
        "SELECT c.tableoid::regclass::text, count(*) FROM chunks c JOIN purged_versions p "
        "ON p.doc_id = c.doc_id AND p.ingest_date = c.ingest_date GROUP BY 1")}


def _purged_so_far(conn: psycopg.Connection[Any], table: str) -> int:
    comment = value(conn, "SELECT obj_description(to_regclass(%s), 'pg_class')", (table,))
    try:
        return int(json.loads(comment or "{}").get(_PURGED_KEY, 0))
    except (ValueError, AttributeError):
        return 0


def _note_purged(conn: psycopg.Connection[Any], thinned: dict[str, int]) -> None:
    """Add the rows purged now to each partition's count since it was built (its table comment: a
    rebuilt partition is a new table and starts again from 0)."""
    for table, rows in thinned.items():
        total = _purged_so_far(conn, table) + rows
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(table), sql.Literal(json.dumps({_PURGED_KEY: total}))))


def _compact_or_drop(conn: psycopg.Connection[Any], table: str, horizon_day: dt.date, result: HistoryPurge) -> None:
    """Drop ``table`` when it holds nothing and only days before the horizon; rebuild it from its rows
    when the rows purged since it was built reach ``COMPACT_SHARE`` of it. A partition being loaded or
    sealed right now is left to the next run."""
    found = next((p for p in catalog.partitions(conn) if p.table == table), None)
    if found is None:
        return
    rows = int(value(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))))
    if rows == 0 and found.last < horizon_day:
        with conn.transaction():
            if partitions.claim(conn, [found], found.first, found.last, wait=False):
                partitions.drop(conn, found)
                result.dropped.append(table)
        return
    purged = _purged_so_far(conn, table)
    if purged >= COMPACT_SHARE * (rows + purged):
        rebuilt = _rebuild(conn, found)
        if rebuilt is not None:
            result.compacted.append(rebuilt)


def _rebuild(conn: psycopg.Connection[Any], found: StoredPartition) -> str | None:
    spec = catalog.index_spec_of(conn, found.table)
    return partitions.rebuild(conn, [found], found.first, found.last, partitions.same_index(spec), wait=False)
