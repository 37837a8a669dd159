"""The SQL search runs against ``chunks`` and ``documents``: the nearest chunks to a vector (cosine
distance ``<=>``), the chunks holding a query's terms scored by BM25 (their stored term weights), each
hit's neighbouring chunks, and the plans of both. Every statement shares one ``Scope`` (model, latest
version of each document, dates, metadata), with every value bound as a parameter. What to search for
and how to rank it is decided in ``pipeline/query``; this module only reads."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import psycopg
from pgvector import SparseVector
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.errors import DimensionMismatchError
from pipeline.storage import metadata_filters
from pipeline.storage.catalog import chunks_dimension
from pipeline.storage.sqlstate import connection_guard
from pipeline.storage.vector_indexes import AnnSettings, apply_ann_settings

_VECTOR_LITERAL = re.compile(r"'\[([^\]]{64,})\]'::vector")


@dataclass(frozen=True)
class Scope:
    """Which chunks a search may return: one model's, of each document's latest version only (unless a
    tombstone deleted it), stored on days within ``since``/``until``, whose metadata holds every ``filters`` pair.
    ``as_of``: the store as it was once that day was loaded: versions and tombstones of later days are
    ignored, so each document's latest version on or before it counts, unless a tombstone by then deleted it."""
    model_id: int
    since: dt.date | None = None
    until: dt.date | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    as_of: dt.date | None = None


@dataclass(frozen=True)
class MatchedChunk:
    """A stored chunk a statement returned, with what that statement measured: ``distance`` (cosine,
    nearest) or ``text_score`` (BM25 times the chunk's list prior, lexical)."""
    chunk_id: str
    doc_id: str
    ingest_date: dt.date
    seq: int
    text: str
    metadata: dict[str, Any]
    distance: float | None = None
    text_score: float | None = None


@dataclass(frozen=True)
class LexicalTerms:
    """A query's side of BM25: the terms whose chunks are the candidates, and every query term's weight."""
    candidate_ids: Sequence[int]
    weights: SparseVector


class ChunkPosition(Protocol):
    """Where a hit is: its chunk, and that chunk's place in its document version."""
    @property
    def chunk_id(self) -> str: ...
    @property
    def doc_id(self) -> str: ...
    @property
    def ingest_date(self) -> dt.date: ...
    @property
    def seq(self) -> int: ...


def _by_then(scope: Scope, day: str) -> sql.Composable:
    """As of a day, only the versions and tombstones stored by then hide a version: `` AND <day> <= as_of``."""
    return sql.SQL("") if scope.as_of is None else sql.SQL(" AND {} <= %(as_of)s").format(sql.SQL(day))


def scope_conditions(scope: Scope) -> tuple[list[sql.Composable], dict[str, Any]]:
    """The WHERE clauses (on chunks ``c``) every statement over the scope's chunks shares, here and in
    storage/document_reads.py: model, latest version (as of a day), dates, metadata."""
    versions, params = version_conditions(scope)
    chunks, values = chunk_conditions(scope)
    return chunks[:1] + versions + chunks[1:], params | values


def version_conditions(scope: Scope, version: str = "c") -> tuple[list[sql.Composable], dict[str, Any]]:
    """The clauses on a chunk's version: latest (as of a day), not deleted, stored within the dates.
    ``version``: the row whose ``doc_id`` and ``ingest_date`` they test (the chunk ``c``, or the documents
    row of its version where a statement tests each version once: storage/readable_search.py)."""
    v = sql.SQL(version)
    # Latest version of each document only. As NOT EXISTS (an anti join) the planner can hash it for
    # exact-scanned days or probe documents_doc_latest_idx per candidate under an index scan; the
    # correlated max() it replaces ran once per row: 1.6 s instead of 0.1 s over 130k exact rows.
    conditions: list[sql.Composable] = [
        sql.SQL("NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = {v}.doc_id AND d.ingest_date > {v}.ingest_date"
                "{by_then})").format(v=v, by_then=_by_then(scope, "d.ingest_date")),
        # Nor a version a tombstone of its day or later deleted (pipeline/storage/tombstones.py): another
        # anti join, hashed (the table holds only deletions) or probed on its (doc_id, ingest_date) key.
        sql.SQL("NOT EXISTS (SELECT 1 FROM document_deletions t WHERE t.doc_id = {v}.doc_id "
                "AND t.ingest_date >= {v}.ingest_date{by_then})").format(v=v, by_then=_by_then(scope, "t.ingest_date")),
    ]
    params: dict[str, Any] = {}
    if scope.as_of is not None:  # only what was stored by then (this also prunes the later days' partitions)
        conditions.append(sql.SQL("{v}.ingest_date <= %(as_of)s").format(v=v))
        params["as_of"] = scope.as_of
    if scope.since is not None:
        conditions.append(sql.SQL("{v}.ingest_date >= %(since)s").format(v=v))
        params["since"] = scope.since
    if scope.until is not None:
        conditions.append(sql.SQL("{v}.ingest_date <= %(until)s").format(v=v))
        params["until"] = scope.until
    return conditions, params


def chunk_conditions(scope: Scope) -> tuple[list[sql.Composable], dict[str, Any]]:
    """The clauses on the chunk ``c`` itself: its model's, its metadata holding every filter pair."""
    conditions: list[sql.Composable] = [sql.SQL("c.model_id = %(model_id)s")]
    params: dict[str, Any] = {"model_id": scope.model_id}
    matching, values = metadata_filters.conditions("c.metadata", scope.filters)
    conditions += matching
    params.update(values)
    return conditions, params


def _nearest_statement(vector: np.ndarray, scope: Scope, k: int) -> tuple[sql.Composed, dict[str, Any]]:
    conditions, params = scope_conditions(scope)
    params.update(query=vector, k=k)
    # Iterative index scans return rows in relaxed order: the outer ORDER BY restores exact order.
    statement = sql.SQL(
        """
        SELECT * FROM (
            SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata,
                   c.embedding <=> %(query)s AS distance
            FROM chunks c
            WHERE {where}
            ORDER BY c.embedding <=> %(query)s
            LIMIT %(k)s
        ) AS nearest ORDER BY distance
        """
    ).format(where=sql.SQL(" AND ").join(conditions))
    return statement, params


def _lexical_statement(terms: LexicalTerms, scope: Scope, k: int) -> tuple[sql.Composed, dict[str, Any]]:
    conditions, params = scope_conditions(scope)
    params.update(terms=list(terms.candidate_ids), weights=terms.weights, k=k)
    # Candidates: the chunks holding a selective query term (the GIN index on lexical_terms, per partition);
    # score: the BM25 inner product (``<#>`` is its negative) times the chunk's list prior.
    statement = sql.SQL(
        """
        SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata,
               (c.lexical <#> %(weights)s) * -c.prior AS text_score
        FROM chunks c
        WHERE c.lexical_terms && %(terms)s::int4[] AND {where}
        ORDER BY text_score DESC, c.chunk_id
        LIMIT %(k)s
        """
    ).format(where=sql.SQL(" AND ").join(conditions))
    return statement, params


def require_dimension(conn: psycopg.Connection[Any], vector: np.ndarray) -> None:
    """Refuse a query vector the stored column cannot be compared with (another model's)."""
    stored = chunks_dimension(conn)
    if len(vector) != stored:
        raise DimensionMismatchError(
            f"the query vector has {len(vector)} dimensions but the stored vectors have {stored}: embed the "
            "query with the model that built the store")


def nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
            ann: AnnSettings) -> list[MatchedChunk]:
    """The ``k`` chunks in ``scope`` nearest to ``vector``, nearest first, walking each day's vector
    index (or scanning an unindexed day exactly) with ``ann``'s settings."""
    statement, params = _nearest_statement(vector, scope, k)
    with connection_guard("searching"):
        require_dimension(conn, vector)
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
            apply_ann_settings(conn, ann)
            rows = cursor.execute(statement, params).fetchall()
    return [MatchedChunk(**{**row, "distance": float(row["distance"])}) for row in rows]


def lexical_matches(conn: psycopg.Connection[Any], terms: LexicalTerms, scope: Scope, k: int) -> list[MatchedChunk]:
    """The ``k`` chunks in ``scope`` holding a candidate term, highest BM25 score first."""
    statement, params = _lexical_statement(terms, scope, k)
    with connection_guard("searching the text"), conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(statement, params).fetchall()
    return [MatchedChunk(**{**row, "text_score": float(row["text_score"])}) for row in rows]


def neighbours(conn: psycopg.Connection[Any], hits: Sequence[ChunkPosition], window: int,
               model_id: int) -> dict[str, list[dict[str, Any]]]:
    """For each hit's ``chunk_id``: the chunks ``window`` positions before and after it, itself
    included, in the same document version (``seq`` and ``text``, in order). The version is the hit's own
    (its day), so a search's ``Scope`` (``as_of`` included) already chose it: no other version can join."""
    with connection_guard("fetching context"), conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            """
            SELECT h.chunk_id AS hit, c.seq, c.text
            FROM unnest(%s::text[], %s::text[], %s::date[], %s::int[]) AS h(chunk_id, doc_id, day, seq)
            JOIN chunks c ON c.ingest_date = h.day AND c.doc_id = h.doc_id AND c.model_id = %s
                          AND c.seq BETWEEN h.seq - %s AND h.seq + %s
            ORDER BY h.chunk_id, c.seq
            """,
            ([h.chunk_id for h in hits], [h.doc_id for h in hits], [h.ingest_date for h in hits],
             [h.seq for h in hits], model_id, window, window),
        ).fetchall()
    context: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        context.setdefault(row["hit"], []).append({"seq": row["seq"], "text": row["text"]})
    return context


def explain_nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int, ann: AnnSettings) -> str:
    """EXPLAIN ANALYZE of ``nearest``: which days answer by which index, or by an exact scan."""
    statement, params = _nearest_statement(vector, scope, k)
    with connection_guard("explaining the search"):
        require_dimension(conn, vector)
        with conn.transaction():
            apply_ann_settings(conn, ann)
            rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    return shortened_plan(r[0] for r in rows)


def shortened_plan(lines: Iterable[str]) -> str:
    """A plan's lines, each inlined query vector shown as its dimensions."""
    # The plan inlines the query vector: hundreds of floats per line that hide the plan itself.
    return _VECTOR_LITERAL.sub(lambda m: f"'[{m.group(1).count(',') + 1} dims]'::vector", "\n".join(lines))


def explain_lexical(conn: psycopg.Connection[Any], terms: LexicalTerms, scope: Scope, k: int) -> str:
    """EXPLAIN ANALYZE of ``lexical_matches``: shows the GIN index on each day's lexical terms (or not)."""
    statement, params = _lexical_statement(terms, scope, k)
    with connection_guard("explaining the text search"):
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    return "\n".join(r[0] for r in rows)


def documents_present(conn: psycopg.Connection[Any], doc_ids: Sequence[str]) -> int:
    """How many of ``doc_ids`` are stored, on any day."""
    with connection_guard("looking up documents"):
        row = conn.execute("SELECT count(DISTINCT doc_id) FROM documents WHERE doc_id = ANY(%s)",
                           (list(doc_ids),)).fetchone()
    return int(row[0]) if row else 0
