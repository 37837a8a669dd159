"""The ``term_stats`` table: for each model and day, how many of the day's chunks hold each term, and
(under ``DAY_CHUNKS``) how many chunks the day has. BM25's inverse document frequencies are summed from
it at query time over the days stored, so they follow every load, rebuild and retention drop; sealing
days into a block changes nothing here (each row names its day, not its partition).

Also indexes chunks stored before the lexical index existed (migration 0008)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from pgvector import SparseVector
from pgvector.psycopg import register_vector

from pipeline.lexical import bm25
from pipeline.lexical.terms import TERM_SPACE
from pipeline.storage.loader import copy_rows

DAY_CHUNKS = -1  # term ids are >= 0: this row's df is the day's chunk count


def lexical_columns(entry: bm25.LexicalEntry | None) -> tuple[list[int] | None, SparseVector | None]:
    """A chunk's stored lexical columns: its indexed terms (``lexical_terms``, under the GIN index: term
    ids and impact markers, bm25.LexicalEntry.indexed_terms) and its BM25 weights (``lexical``, a
    sparsevec over the term space); both NULL without an entry."""
    if entry is None:
        return None, None
    return entry.indexed_terms, SparseVector(dict(zip(entry.term_ids, entry.weights, strict=True)), TERM_SPACE)


def refresh_day(conn: psycopg.Connection[Any], day: dt.date, model_id: int, kept_models: Sequence[int] = ()) -> None:
    """Recount the model's statistics of the day from its stored chunks (inside the load's transaction).
    Other models' statistics of the day stay if their rows were kept (``kept_models``) and go otherwise,
    as their rows did."""
    conn.execute("DELETE FROM term_stats WHERE ingest_date = %s AND (model_id = %s OR NOT (model_id = ANY(%s)))",
                 (day, model_id, list(kept_models)))
    conn.execute(
        """
        INSERT INTO term_stats (model_id, ingest_date, term, df)
        SELECT %(model)s, %(day)s, t.term, count(*)
        FROM chunks c CROSS JOIN LATERAL unnest(c.lexical_terms) AS t(term)
        WHERE c.ingest_date = %(day)s AND c.model_id = %(model)s
        GROUP BY t.term
        UNION ALL
        SELECT %(model)s, %(day)s, %(day_chunks)s, count(*)
        FROM chunks WHERE ingest_date = %(day)s AND model_id = %(model)s
        HAVING count(*) > 0
        """,
        {"day": day, "model": model_id, "day_chunks": DAY_CHUNKS},
    )


def forget_before(conn: psycopg.Connection[Any], horizon: dt.date, keep: Sequence[dt.date]) -> None:
    conn.execute("DELETE FROM term_stats WHERE ingest_date < %s AND NOT (ingest_date = ANY(%s))", (horizon, list(keep)))


def forget_days(conn: psycopg.Connection[Any], first: dt.date, last: dt.date) -> int:
    """Delete every model's statistics of the days ``first``..``last``, whose chunks are gone (a seal left
    them out); returns the chunks they counted."""
    row = conn.execute(
        "WITH gone AS (DELETE FROM term_stats WHERE ingest_date BETWEEN %s AND %s RETURNING term, df) "
        "SELECT coalesce(sum(df) FILTER (WHERE term = %s), 0) FROM gone", (first, last, DAY_CHUNKS)).fetchone()
    return int(row[0]) if row else 0


def frequencies(conn: psycopg.Connection[Any], model_id: int, term_ids: Iterable[int]) -> tuple[int, dict[int, int]]:
    """The model's chunk count over all stored days, and each term's document frequency."""
    wanted = [*set(term_ids), DAY_CHUNKS]
    rows = conn.execute(
        "SELECT term, sum(df)::bigint FROM term_stats WHERE model_id = %s AND term = ANY(%s) GROUP BY term",
        (model_id, wanted)).fetchall()
    found = {int(term): int(df) for term, df in rows}
    return found.pop(DAY_CHUNKS, 0), found


def index_stored_chunks(conn: psycopg.Connection[Any]) -> int:
    """Give every stored chunk without a lexical entry its terms and weights, one (day, model) at a time
    as ingestion would have (title, section and text; the day's mean length), then count the day's
    statistics. Returns the chunks indexed."""
    groups = conn.execute("SELECT DISTINCT ingest_date, model_id FROM chunks WHERE lexical_terms IS NULL "
                          "ORDER BY 1, 2").fetchall()
    indexed = 0
    register_vector(conn)  # the migration's connection: the sparsevec type for COPY
    conn.execute("CREATE TEMPORARY TABLE lexical_backfill (chunk_id text, terms int4[], weights sparsevec) "
                 "ON COMMIT DROP")
    for day, model_id in groups:
        rows = conn.execute("SELECT chunk_id, text, metadata->>'title', metadata->>'section' FROM chunks "
                            "WHERE ingest_date = %s AND model_id = %s", (day, model_id)).fetchall()
        entries = bm25.entries([bm25.chunk_term_counts(text, title, section) for _, text, title, section in rows])
        conn.execute("TRUNCATE lexical_backfill")
        with conn.cursor() as cursor:
            copy_rows(cursor, "lexical_backfill", ("chunk_id", "terms", "weights"), ("text", "int4[]", "sparsevec"),
                      ((chunk_id, *lexical_columns(entry)) for (chunk_id, *_), entry in zip(rows, entries, strict=True)))
        conn.execute(
            """
            UPDATE chunks c SET lexical_terms = b.terms, lexical = b.weights
            FROM lexical_backfill b
            WHERE c.ingest_date = %s AND c.model_id = %s AND c.chunk_id = b.chunk_id
            """, (day, model_id))
        indexed += len(rows)
        refresh_day(conn, day, model_id, kept_models=[m for _, m in groups])
    return indexed
