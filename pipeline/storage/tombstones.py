"""The ``document_deletions`` table: tombstones, "document X was deleted as of day D".

A tombstone hides every version of its document stored on its day or before (search's condition is in
``chunk_search``); a version landed on a later day is live again. Nothing is rewritten: the hidden
versions' chunks stay in their days' partitions until retention drops those days, and a tombstone is
deleted by retention once no stored version is left for it to hide. ``origin`` is ``manifest`` (written
with its day's load from the day folder's manifest, replaced whenever the day is loaded again) or
``cli`` (``docvec delete``: kept across reloads of its day), or ``collection`` (written with its day's
snapshot of a collection for the documents it no longer lists, replaced like a manifest's)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from pipeline.storage.queries import value

Origin = Literal["manifest", "cli", "collection"]
DayOrigin = Literal["manifest", "collection"]  # written with their day's load, replaced when it is loaded again


@dataclass(frozen=True)
class HiddenVersion:
    """The version of a document a tombstone hid from search: the latest stored on its day or before."""
    doc_id: str
    ingest_date: dt.date
    chunks: int


@dataclass(frozen=True)
class Tombstones:
    """What writing tombstones on ``day`` did: the versions they hid, the ids with no stored version on
    or before the day (nothing to hide: a typo, or a document never loaded), and the ids a later day
    holds a version of (that version stays searchable)."""
    day: dt.date
    hidden: list[HiddenVersion] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    later: dict[str, dt.date] = field(default_factory=dict)


def record(conn: psycopg.Connection[Any], day: dt.date, doc_ids: Sequence[str], origin: Origin) -> Tombstones:
    """Tombstones for ``doc_ids`` as of ``day``. A ``cli`` tombstone takes over a ``manifest`` or
    ``collection`` one of the same document and day (so reloading the day keeps it)."""
    ids = sorted(set(doc_ids))
    if not ids:
        return Tombstones(day)
    conn.execute(
        """
        INSERT INTO document_deletions (doc_id, ingest_date, origin)
        SELECT id, %(day)s, %(origin)s FROM unnest(%(ids)s::text[]) AS q(id)
        ON CONFLICT (doc_id, ingest_date) DO UPDATE
            SET origin = CASE WHEN EXCLUDED.origin = 'cli' THEN 'cli' ELSE document_deletions.origin END,
                recorded_at = CASE WHEN EXCLUDED.origin = 'cli' THEN now() ELSE document_deletions.recorded_at END
        """,
        {"day": day, "origin": origin, "ids": ids},
    )
    conn.execute("ANALYZE document_deletions")  # search's anti join plans from these statistics
    return _effect(conn, day, ids)


def replace_with_day(conn: psycopg.Connection[Any], day: dt.date, doc_ids: Sequence[str],
                     origin: DayOrigin = "manifest") -> Tombstones:
    """The day's tombstones written with its load (a manifest's, or a collection snapshot's) become
    exactly ``doc_ids`` under ``origin`` (its ``cli`` tombstones stay)."""
    removed = conn.execute("DELETE FROM document_deletions WHERE ingest_date = %s AND origin IN ('manifest', 'collection')",
                           (day,)).rowcount
    if removed and not doc_ids:
        conn.execute("ANALYZE document_deletions")
    return record(conn, day, doc_ids, origin)


def _effect(conn: psycopg.Connection[Any], day: dt.date, ids: list[str]) -> Tombstones:
    rows = conn.execute(
        """
        SELECT q.id, hidden.ingest_date, hidden.chunk_count,
               (SELECT min(l.ingest_date) FROM documents l WHERE l.doc_id = q.id AND l.ingest_date > %(day)s)
        FROM unnest(%(ids)s::text[]) AS q(id)
        LEFT JOIN LATERAL (SELECT d.ingest_date, d.chunk_count FROM documents d
                           WHERE d.doc_id = q.id AND d.ingest_date <= %(day)s
                           ORDER BY d.ingest_date DESC LIMIT 1) hidden ON true
        ORDER BY q.id
        """,
        {"day": day, "ids": ids},
    ).fetchall()
    result = Tombstones(day)
    for doc_id, hidden_day, chunks, later in rows:
        if hidden_day is None:
            result.unknown.append(doc_id)
        else:
            result.hidden.append(HiddenVersion(doc_id, hidden_day, int(chunks)))
        if later is not None:
            result.later[doc_id] = later
    return result


def on_day(conn: psycopg.Connection[Any], day: dt.date) -> list[str]:
    """The documents with a tombstone on ``day``."""
    return [r[0] for r in conn.execute(
        "SELECT doc_id FROM document_deletions WHERE ingest_date = %s ORDER BY doc_id", (day,))]


def forget_before(conn: psycopg.Connection[Any], horizon: dt.date) -> int:
    """Delete the tombstones of days before ``horizon`` that no longer hide any stored version (run
    after the expired days' ``documents`` rows are gone; a day retention had to skip keeps its
    versions, and so the tombstones that hide them). Returns how many went."""
    return conn.execute(
        """
        DELETE FROM document_deletions t
        WHERE t.ingest_date < %s
          AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = t.doc_id AND d.ingest_date <= t.ingest_date)
        """,
        (horizon,),
    ).rowcount


def searchable_documents(conn: psycopg.Connection[Any]) -> int:
    """Documents search can return: those whose latest stored version no tombstone hides."""
    return int(value(
        conn,
        """
        SELECT count(*) FROM (SELECT doc_id, max(ingest_date) AS latest FROM documents GROUP BY doc_id) v
        WHERE NOT EXISTS (SELECT 1 FROM document_deletions t WHERE t.doc_id = v.doc_id AND t.ingest_date >= v.latest)
        """,
    ))


def count_of(conn: psycopg.Connection[Any], doc_ids: Sequence[str]) -> int:
    """Tombstones of these documents, on any day (what ``erase`` would remove)."""
    row = conn.execute("SELECT count(*) FROM document_deletions WHERE doc_id = ANY(%s)", (list(doc_ids),)).fetchone()
    return int(row[0]) if row else 0


def erase(conn: psycopg.Connection[Any], doc_ids: Sequence[str]) -> int:
    """Every tombstone of these documents (``docvec forget``: an id can itself be what must go)."""
    return conn.execute("DELETE FROM document_deletions WHERE doc_id = ANY(%s)", (list(doc_ids),)).rowcount
