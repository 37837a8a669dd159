"""The SQL search runs against ``chunks`` and ``documents``: the nearest chunks to a vector (cosine
distance ``<=>``), the chunks holding a query's terms scored by BM25 (their stored term weights), each
hit's neighbouring chunks, its document's opening and its own term weights, and the plans of both
branches. Every statement shares one ``Scope`` (model, latest version of each document, dates,
metadata), with every value bound as a parameter. What to search for and how to rank it is decided in
``pipeline/query``; this module only reads."""

from __future__ import annotations

import datetime as dt
import json
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
from pipeline.storage.sqlstate import connection_guard
from pipeline.storage.vector_indexes import AnnSettings, apply_ann_settings
from pipeline.storage.vector_storage import VectorColumn, stored_column

_VECTOR_LITERAL = re.compile(r"'\[([^\]]{64,})\]'::(vector|halfvec)")


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
    """A query's side of BM25: which chunks are the candidates (those whose indexed terms hold any of
    ``any_of``, or all of one of ``all_of``: pipeline/lexical/pruning.py), and every query term's weight."""
    any_of: Sequence[int]
    weights: SparseVector
    all_of: Sequence[Sequence[int]] = ()


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
    days, params = day_conditions(scope, version)
    return latest_conditions(scope, version) + days, params


def latest_conditions(scope: Scope, version: str = "c") -> list[sql.Composable]:
    """The anti joins of ``version_conditions``: the latest version (as of a day), not deleted."""
    v = sql.SQL(version)
    # Latest version of each document only. As NOT EXISTS (an anti join) the planner can hash it for
    # exact-scanned days or probe documents_doc_latest_idx per candidate under an index scan; the
    # correlated max() it replaces ran once per row: 1.6 s instead of 0.1 s over 130k exact rows.
    return [
        sql.SQL("NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = {v}.doc_id AND d.ingest_date > {v}.ingest_date"
                "{by_then})").format(v=v, by_then=_by_then(scope, "d.ingest_date")),
        # Nor a version a tombstone of its day or later deleted (pipeline/storage/tombstones.py): another
        # anti join, hashed (the table holds only deletions) or probed on its (doc_id, ingest_date) key.
        sql.SQL("NOT EXISTS (SELECT 1 FROM document_deletions t WHERE t.doc_id = {v}.doc_id "
                "AND t.ingest_date >= {v}.ingest_date{by_then})").format(v=v, by_then=_by_then(scope, "t.ingest_date")),
    ]


def day_conditions(scope: Scope, version: str = "c") -> tuple[list[sql.Composable], dict[str, Any]]:
    """The clauses of ``version_conditions`` on the version's day: ``as_of``, ``since``, ``until``."""
    v = sql.SQL(version)
    conditions: list[sql.Composable] = []
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


def _nearest_statement(vector: np.ndarray, scope: Scope, k: int,
                       column: VectorColumn) -> tuple[sql.Composed, dict[str, Any]]:
    conditions, params = scope_conditions(scope)
    params.update(query=vector, k=k)
    # Iterative index scans return rows in relaxed order: the outer ORDER BY restores exact order. The
    # query is cast to the column's type (halfvec or vector), the type its indexes' operator class orders.
    statement = sql.SQL(
        """
        SELECT * FROM (
            SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata,
                   c.embedding <=> {query} AS distance
            FROM chunks c
            WHERE {where}
            ORDER BY c.embedding <=> {query}
            LIMIT %(k)s
        ) AS nearest ORDER BY distance
        """
    ).format(where=sql.SQL(" AND ").join(conditions), query=column.query())
    return statement, params


def _lexical_statement(terms: LexicalTerms, scope: Scope, k: int, scan_limit: int | None = None,
                       under_policies: bool = False) -> tuple[sql.Composed, dict[str, Any]]:
    if under_policies:
        return _readable_lexical_statement(terms, scope, k, scan_limit)
    chunks, params = chunk_conditions(scope)
    days, values = day_conditions(scope)
    params.update(values, weights=terms.weights, k=k, scan_limit=scan_limit)
    # Candidates: GIN lookups on lexical_terms, per partition (a BitmapOr of them); score: the BM25 inner
    # product (``<#>`` is its negative) times the chunk's list prior. ``scan_limit``: score only the first
    # candidates found, in no particular order (a bounded best effort).
    lookups: list[sql.Composable] = []
    if terms.any_of:
        lookups.append(sql.SQL("c.lexical_terms && %(any_of)s::int4[]"))
        params["any_of"] = list(terms.any_of)
    for n, ids in enumerate(terms.all_of):
        lookups.append(sql.SQL("c.lexical_terms @> {}::int4[]").format(sql.Placeholder(f"all_of_{n}")))
        params[f"all_of_{n}"] = list(ids)
    # The candidates are scored and sorted first; the version anti joins then probe only as many of the
    # best as it takes to find k (their subqueries cannot be pushed into the sorted one). Joined before
    # sorting, the planner hashed all of documents for a few thousand candidates: 37 ms instead of 4.
    # Under a scan limit they apply before it, so that the chunks scored are all in scope.
    latest = latest_conditions(scope)
    inner, outer = (chunks + days + latest, [sql.SQL("true")]) if scan_limit else (chunks + days, latest)
    statement = sql.SQL(
        """
        SELECT c.* FROM (
            SELECT * FROM (
                SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata,
                       (c.lexical <#> %(weights)s) * -c.prior AS text_score
                FROM chunks c
                WHERE ({lookups}) AND {where}
                LIMIT %(scan_limit)s
            ) AS found
            ORDER BY text_score DESC, chunk_id
        ) AS c
        WHERE {latest}
        ORDER BY c.text_score DESC, c.chunk_id
        LIMIT %(k)s
        """
    ).format(lookups=sql.SQL(" OR ").join(lookups or [sql.SQL("false")]),
             where=sql.SQL(" AND ").join(inner), latest=sql.SQL(" AND ").join(outer))
    return statement, params


def _readable_lexical_statement(terms: LexicalTerms, scope: Scope, k: int,
                                scan_limit: int | None) -> tuple[sql.Composed, dict[str, Any]]:
    """``_lexical_statement`` for a session the row-level security policies bind: its conditions on
    ``lexical_terms`` cannot use the GIN index below the policies (no array operator is leakproof), so the
    candidates and their scores come from ``docvec_readable_text_matches`` (migration 0017: the GIN index,
    then the policies' own readers conditions, as the tables' owner), with the scope's model, dates and
    metadata. The version anti joins read ``documents`` under the policies, as in ``_lexical_statement``;
    under a scan limit they apply after it (the function's first candidates found may hold superseded
    versions: a best effort over fewer chunks). The k kept are read from ``chunks`` under the policies:
    a row they would hide is dropped, whatever the function returned."""
    params: dict[str, Any] = {
        "any_of": list(terms.any_of), "all_of": json.dumps([list(ids) for ids in terms.all_of]),
        "weights": terms.weights, "model_id": scope.model_id, "since": scope.since, "until": scope.until,
        "as_of": scope.as_of, "filter_groups": json.dumps(metadata_filters.groups(scope.filters)),
        "scan_limit": scan_limit, "k": k,
    }
    statement = sql.SQL(
        """
        SELECT chunk.chunk_id, chunk.doc_id, chunk.ingest_date, chunk.seq, chunk.text, chunk.metadata,
               best.text_score
        FROM (
            SELECT c.* FROM (
                SELECT * FROM docvec_readable_text_matches(
                    %(any_of)s::int4[], %(all_of)s::jsonb, %(weights)s, %(model_id)s, %(since)s::date,
                    %(until)s::date, %(as_of)s::date, %(filter_groups)s::jsonb, %(scan_limit)s)
                ORDER BY text_score DESC, chunk_id
            ) AS c
            WHERE {latest}
            ORDER BY c.text_score DESC, c.chunk_id
            LIMIT %(k)s
        ) AS best
        JOIN chunks chunk ON chunk.ingest_date = best.ingest_date AND chunk.chunk_id = best.chunk_id
        ORDER BY best.text_score DESC, best.chunk_id
        """
    ).format(latest=sql.SQL(" AND ").join(latest_conditions(scope)))
    return statement, params


def require_dimension(conn: psycopg.Connection[Any], vector: np.ndarray) -> VectorColumn:
    """Refuse a query vector the stored column cannot be compared with (another model's); the column."""
    stored = stored_column(conn)
    if len(vector) != stored.dim:
        raise DimensionMismatchError(
            f"the query vector has {len(vector)} dimensions but the stored vectors have {stored.dim}: embed the "
            "query with the model that built the store")
    return stored


def nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
            ann: AnnSettings) -> list[MatchedChunk]:
    """The ``k`` chunks in ``scope`` nearest to ``vector``, nearest first, walking each day's vector
    index (or scanning an unindexed day exactly) with ``ann``'s settings."""
    with connection_guard("searching"):
        statement, params = _nearest_statement(vector, scope, k, require_dimension(conn, vector))
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
            apply_ann_settings(conn, ann)
            rows = cursor.execute(statement, params).fetchall()
    return [MatchedChunk(**{**row, "distance": float(row["distance"])}) for row in rows]


# The function a session bound by the policies scores its candidates with (migration 0017).
READABLE_TEXT_MATCHES = ("docvec_readable_text_matches(int4[], jsonb, sparsevec, integer, date, date, date, jsonb, "
                         "integer)")


def _text_session(conn: psycopg.Connection[Any]) -> bool:
    """For the rest of the transaction, no parallel workers: candidate sets are a few thousand chunks,
    where starting workers costs more than they save (and a server's cores serve concurrent searches
    better one each). Returns whether row-level security binds the session on ``chunks`` and it may
    execute ``READABLE_TEXT_MATCHES`` (a search as principals): the text statement goes through it."""
    row = conn.execute(
        "SELECT set_config('max_parallel_workers_per_gather', '0', true), row_security_active('chunks') "
        "AND coalesce(has_function_privilege(to_regprocedure(%s), 'EXECUTE'), false)",
        (READABLE_TEXT_MATCHES,)).fetchone()
    return bool(row and row[1])


def lexical_matches(conn: psycopg.Connection[Any], terms: LexicalTerms, scope: Scope, k: int, *,
                    scan_limit: int | None = None) -> list[MatchedChunk]:
    """The ``k`` candidates in ``scope`` with the highest BM25 score, best first (of the first
    ``scan_limit`` found, when given), without parallel workers."""
    with connection_guard("searching the text"), conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        statement, params = _lexical_statement(terms, scope, k, scan_limit, _text_session(conn))
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


def opening_similarities(conn: psycopg.Connection[Any], vector: np.ndarray, hits: Sequence[ChunkPosition],
                         model_id: int) -> dict[str, float]:
    """For each hit's document: the similarity (1 − cosine distance) of ``vector`` to its opening chunk
    (``seq`` 0) in the hit's own version, so the search's ``Scope`` already chose it (metadata filters
    choose hits, not what a document is about: its opening counts whatever its own metadata). Where the
    hits hold two versions of a document (two branches on two connections, a version loaded between
    them), the latest one's. A document whose opening the session may not read (row-level security)
    is left out."""
    versions = {(h.doc_id, h.ingest_date) for h in hits}
    if not versions:
        return {}
    with connection_guard("reading the documents' openings"):
        column = require_dimension(conn, vector)
        rows = conn.execute(
            sql.SQL("""
            SELECT v.doc_id, 1 - (c.embedding <=> {query}) AS similarity
            FROM unnest(%(doc_ids)s::text[], %(days)s::date[]) AS v(doc_id, day)
            JOIN chunks c ON c.ingest_date = v.day AND c.doc_id = v.doc_id AND c.model_id = %(model_id)s AND c.seq = 0
            ORDER BY v.day
            """).format(query=column.query()),
            {"doc_ids": [doc for doc, _ in versions], "days": [day for _, day in versions], "model_id": model_id,
             "query": vector},
        ).fetchall()
    return {doc_id: float(similarity) for doc_id, similarity in rows}


def _lexical_of_versions(cursor: psycopg.Cursor[Any], columns: str, hits: Sequence[ChunkPosition], model_id: int,
                         *values: Any) -> list[Any]:
    """``chunk_id`` and ``columns`` (an expression over ``c``, its placeholders bound to ``values``) of each
    hit's chunk in the hit's own version (its day), so the search's ``Scope`` already chose it; a chunk
    without a lexical entry, or one the session may not read (row-level security), is left out."""
    if not hits:
        return []
    statement = sql.SQL(
        """
        SELECT c.chunk_id, {columns}
        FROM unnest(%s::text[], %s::date[]) AS h(chunk_id, day)
        JOIN chunks c ON c.ingest_date = h.day AND c.chunk_id = h.chunk_id AND c.model_id = %s
        WHERE c.lexical IS NOT NULL
        """
    ).format(columns=sql.SQL(columns))
    return cursor.execute(statement, (*values, [h.chunk_id for h in hits], [h.ingest_date for h in hits],
                                      model_id)).fetchall()


def stored_lexical(conn: psycopg.Connection[Any], hits: Sequence[ChunkPosition],
                   model_id: int) -> dict[str, dict[int, float]]:
    """Each hit's stored BM25 weights (``lexical``, by term id), read in its own version (one the session
    may not read is left out)."""
    # Binary: a sparsevec's text form costs ~40 µs a chunk to parse in Python, its binary form a tenth.
    with connection_guard("reading the feedback chunks' term weights"), conn.cursor(binary=True) as cursor:
        rows = _lexical_of_versions(cursor, "c.lexical", hits, model_id)
    return {chunk_id: dict(zip(lexical.indices(), lexical.values(), strict=True)) for chunk_id, lexical in rows}


def lexical_scores(conn: psycopg.Connection[Any], hits: Sequence[ChunkPosition], weights: SparseVector,
                   model_id: int) -> dict[str, float]:
    """Each hit's BM25 score for the query ``weights`` (term id → weight), as the text branch scores a
    chunk (its stored weights' inner product with the query's, times its list prior), in its own version
    (one the session may not read is left out)."""
    with connection_guard("scoring the candidates' text"), conn.cursor() as cursor:
        rows = _lexical_of_versions(cursor, "(c.lexical <#> %s) * -c.prior", hits, model_id, weights)
    return {chunk_id: float(score) for chunk_id, score in rows}


def explain_nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int, ann: AnnSettings) -> str:
    """EXPLAIN ANALYZE of ``nearest``: which days answer by which index, or by an exact scan."""
    with connection_guard("explaining the search"):
        statement, params = _nearest_statement(vector, scope, k, require_dimension(conn, vector))
        with conn.transaction():
            apply_ann_settings(conn, ann)
            rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    return shortened_plan(r[0] for r in rows)


def shortened_plan(lines: Iterable[str]) -> str:
    """A plan's lines, each inlined query vector shown as its dimensions."""
    # The plan inlines the query vector: hundreds of floats per line that hide the plan itself.
    return _VECTOR_LITERAL.sub(lambda m: f"'[{m.group(1).count(',') + 1} dims]'::{m.group(2)}", "\n".join(lines))


def explain_lexical(conn: psycopg.Connection[Any], terms: LexicalTerms, scope: Scope, k: int, *,
                    scan_limit: int | None = None) -> str:
    """EXPLAIN ANALYZE of ``lexical_matches``: shows the GIN index on each day's lexical terms (or not)."""
    with connection_guard("explaining the text search"), conn.transaction():
        under_policies = _text_session(conn)
        statement, params = _lexical_statement(terms, scope, k, scan_limit, under_policies)
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    lines = [r[0] for r in rows]
    if under_policies:  # the function's own statement runs inside it: say what it does
        lines.insert(0, "docvec plan: candidates scored by docvec_readable_text_matches (the GIN index on lexical "
                        "terms, then the readers policy's conditions; migration 0017), the hits read under the "
                        "policies")
    return "\n".join(lines)


def documents_present(conn: psycopg.Connection[Any], doc_ids: Sequence[str]) -> int:
    """How many of ``doc_ids`` are stored, on any day."""
    with connection_guard("looking up documents"):
        row = conn.execute("SELECT count(DISTINCT doc_id) FROM documents WHERE doc_id = ANY(%s)",
                           (list(doc_ids),)).fetchone()
    return int(row[0]) if row else 0
