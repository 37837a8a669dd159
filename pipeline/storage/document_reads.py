"""Reading a stored document as search sees it, for faces that show more than a hit (``docvec mcp``'s
``fetch_document`` and ``store_info``): a document version's chunks in order, a window of them around
one chunk, and what each stored day holds. Every statement reads the version a search's ``Scope``
chooses (the latest, unless a tombstone deleted it; ``as_of`` a day: the latest by then), with the same
conditions as ``chunk_search`` (``scope_conditions``), and reads only what the session may: run as
principals (``access.acting_as``), row-level security leaves out what they may not read, so a document
they may not read is the same as one that does not exist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.storage.chunk_search import MatchedChunk, Scope, scope_conditions
from pipeline.storage.sqlstate import connection_guard


def _chunks(conn: psycopg.Connection[Any], statement: sql.Composed, params: dict[str, Any]) -> list[MatchedChunk]:
    with connection_guard("reading a document"), conn.cursor(row_factory=dict_row) as cursor:
        return [MatchedChunk(**row) for row in cursor.execute(statement, params).fetchall()]


def version_chunks(conn: psycopg.Connection[Any], doc_id: str, scope: Scope, *, first: int = 0,
                   limit: int = 50) -> list[MatchedChunk]:
    """The chunks of ``doc_id``'s version in ``scope``, in order, from position ``first`` on, at most
    ``limit``; none when no version of it is in scope (or the session may not read it)."""
    conditions, params = scope_conditions(scope)
    params.update(doc_id=doc_id, first=first, limit=limit)
    statement = sql.SQL(
        """
        SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata
        FROM chunks c
        WHERE c.doc_id = %(doc_id)s AND c.seq >= %(first)s AND {where}
        ORDER BY c.seq
        LIMIT %(limit)s
        """
    ).format(where=sql.SQL(" AND ").join(conditions))
    return _chunks(conn, statement, params)


def chunk_window(conn: psycopg.Connection[Any], doc_id: str, chunk_id: str, window: int,
                 scope: Scope) -> list[MatchedChunk]:
    """The chunk ``chunk_id`` of ``doc_id``'s version in ``scope`` and the ``window`` chunks before and
    after it in that version, in order; none when that version does not hold the chunk."""
    conditions, params = scope_conditions(scope)
    params.update(doc_id=doc_id, chunk_id=chunk_id, window=window)
    statement = sql.SQL(
        """
        WITH hit AS (
            SELECT c.ingest_date, c.seq FROM chunks c
            WHERE c.doc_id = %(doc_id)s AND c.chunk_id = %(chunk_id)s AND {where}
        )
        SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata
        FROM hit h
        JOIN chunks c ON c.ingest_date = h.ingest_date AND c.doc_id = %(doc_id)s AND c.model_id = %(model_id)s
                     AND c.seq BETWEEN h.seq - %(window)s AND h.seq + %(window)s
        ORDER BY c.seq
        """
    ).format(where=sql.SQL(" AND ").join(conditions))
    return _chunks(conn, statement, params)


@dataclass(frozen=True)
class DayHoldings:
    """What a stored day holds of what the session may read: document versions, and their chunks of one model."""
    day: dt.date
    documents: int
    chunks: int


def day_holdings(conn: psycopg.Connection[Any], model_id: int) -> list[DayHoldings]:
    """Per stored day, oldest first: its document versions and their chunks of ``model_id``, counting
    only what the session may read (as principals, row-level security decides)."""
    with connection_guard("counting the stored days"):
        rows = conn.execute(
            """
            SELECT d.ingest_date, d.documents,
                   (SELECT count(*) FROM chunks c WHERE c.ingest_date = d.ingest_date AND c.model_id = %s)
            FROM (SELECT ingest_date, count(*) AS documents FROM documents GROUP BY ingest_date) d
            ORDER BY d.ingest_date
            """,
            (model_id,),
        ).fetchall()
    return [DayHoldings(day, int(documents), int(chunks)) for day, documents, chunks in rows]


def any_restricted(conn: psycopg.Connection[Any]) -> bool:
    """Whether any stored document is not readable by everyone (its readers lack ``*``): permissions
    are in use, so a search that is not as principals would read past them."""
    with connection_guard("checking for restricted documents"):
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM documents WHERE NOT ('*' = ANY(readers)))").fetchone()
    return bool(row and row[0])
