"""Search over the store, three ways: ``vector`` (cosine distance ``<=>``, similarity ``1 - distance``),
``text`` (Okapi BM25 over each chunk's stored term weights, IDF from the live term statistics), and
``hybrid`` (both, fused by document: see fusion.py). Metadata, date and version
filters are the same SQL for every mode and bound as parameters; each document's latest version only."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg
from pgvector import SparseVector
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.errors import ConfigError, DimensionMismatchError
from pipeline.ingest.embedding import Embedder
from pipeline.lexical import bm25
from pipeline.lexical.terms import TERM_SPACE
from pipeline.query.fusion import VECTOR_WEIGHT, check_fusion, fuse, limit_per_document
from pipeline.query.hits import SearchHit
from pipeline.query.search_model import search_model_id
from pipeline.storage import catalog, term_stats
from pipeline.storage.db import connection_guard
from pipeline.storage.vector_indexes import AnnSettings, apply_ann_settings

_VECTOR_LITERAL = re.compile(r"'\[([^\]]{64,})\]'::vector")


MODES = ("vector", "text", "hybrid")
_NUMBER = re.compile(r"-?\d{1,15}")


def parse_filters(pairs: Sequence[str]) -> dict[str, str]:
    """``["topic=databases", "author=ann"]`` → ``{"topic": "databases", "author": "ann"}``."""
    filters: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"filter {pair!r} is not key=value (e.g. topic=databases)")
        filters[key.strip()] = value.strip()
    return filters


@dataclass(frozen=True)
class SearchTuning:
    # HNSW candidates and IVFFlat lists visited per query. None: what the indexes were built and their
    # recall checked for (recorded on each index by the vector_index step; see catalog.search_settings).
    ef_search: int | None = None
    probes: int | None = None
    fusion: str = "relative"  # how hybrid combines the branches (fusion.FUSIONS)
    vector_weight: float = VECTOR_WEIGHT  # relative fusion: the vector branch's share
    rrf_k: int = 60  # rrf fusion: larger flattens the weight of top ranks
    candidates: int = 50  # per branch, before fusion and per-document limits

    def __post_init__(self) -> None:
        if self.rrf_k < 1 or self.candidates < 1:
            raise ConfigError(f"rrf_k and candidates must be >= 1, got {self.rrf_k} and {self.candidates}")
        check_fusion(self.fusion, self.vector_weight)
        if (self.ef_search is not None and self.ef_search < 1) or (self.probes is not None and self.probes < 1):
            raise ConfigError(f"ef_search and probes must be >= 1, got {self.ef_search} and {self.probes}")

    def ann_settings(self, conn: psycopg.Connection[Any]) -> AnnSettings:
        """The session's ANN settings: as recorded on the store's indexes unless overridden here."""
        recorded = catalog.search_settings(conn)
        return AnnSettings(ef_search=self.ef_search or recorded.ef_search, probes=self.probes or recorded.probes)


def _conditions(model_id: int, since: dt.date | None, until: dt.date | None,
                filters: Mapping[str, str] | None) -> tuple[list[sql.Composable], dict[str, Any]]:
    """The WHERE clauses every mode shares: model, latest version, dates, metadata."""
    # Latest version of each document only. As NOT EXISTS (an anti join) the planner can hash it for
    # exact-scanned days or probe documents_doc_latest_idx per candidate under an index scan; the
    # correlated max() it replaces ran once per row: 1.6 s instead of 0.1 s over 130k exact rows.
    conditions: list[sql.Composable] = [
        sql.SQL("c.model_id = %(model_id)s"),
        sql.SQL("NOT EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = c.doc_id AND d.ingest_date > c.ingest_date)"),
    ]
    params: dict[str, Any] = {"model_id": model_id}
    if since is not None:
        conditions.append(sql.SQL("c.ingest_date >= %(since)s"))
        params["since"] = since
    if until is not None:
        conditions.append(sql.SQL("c.ingest_date <= %(until)s"))
        params["until"] = until
    if filters:
        text_values = {key: value for key, value in filters.items() if not _NUMBER.fullmatch(value)}
        if text_values:
            conditions.append(sql.SQL("c.metadata @> %(filters)s::jsonb"))
            params["filters"] = json.dumps(text_values)
        # A number (page=12) matches the number readers store, or the same digits as text (front matter).
        for n, (key, value) in enumerate((k, v) for k, v in filters.items() if k not in text_values):
            conditions.append(sql.SQL("(c.metadata @> %({a})s::jsonb OR c.metadata @> %({b})s::jsonb)").format(
                a=sql.SQL(f"number_{n}"), b=sql.SQL(f"digits_{n}")))
            params[f"number_{n}"] = json.dumps({key: int(value)})
            params[f"digits_{n}"] = json.dumps({key: value})
    return conditions, params


def _statement(query_vector: np.ndarray, model_id: int, k: int, since: dt.date | None, until: dt.date | None,
               filters: Mapping[str, str] | None) -> tuple[sql.Composed, dict[str, Any]]:
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    conditions, params = _conditions(model_id, since, until, filters)
    params.update(query=query_vector, k=k)
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


# Terms held by more than this share of the stored chunks still score, but do not select candidates:
# a chunk holding only such terms cannot rank high. On benchmarks/eval/python-docs.jsonl this kept
# BM25's MRR@10 (0.839 against 0.837 with every term) and read 5x fewer candidates (481 against 2,496
# chunks per query); at 2% MRR fell to 0.801. Pruning only pays where candidates are many: a term held
# by at most CANDIDATE_FLOOR chunks always selects, so a small store (the sample corpus, where 5% is a
# handful of chunks) scores every chunk that shares a word with the query.
CANDIDATE_TERM_SHARE = 0.05
CANDIDATE_FLOOR = 200


@dataclass(frozen=True)
class LexicalQuery:
    """A query's side of BM25: its terms' IDF weights over the days stored (``storage/term_stats``),
    and the terms whose chunks are the candidates (the GIN index on ``lexical_terms``): the ones rare
    enough to select, or the rarest when none is. Terms no stored chunk holds match nothing."""
    term_ids: list[int]
    candidate_ids: list[int]
    weights: SparseVector


def lexical_query(conn: psycopg.Connection[Any], query: str, model_id: int) -> LexicalQuery:
    wanted = bm25.query_terms(query)
    chunks, frequencies = term_stats.frequencies(conn, model_id, wanted)
    present = {term: df for term, df in frequencies.items() if df > 0}
    weights = {term: bm25.idf(df, chunks) for term, df in present.items()}
    most = max(CANDIDATE_TERM_SHARE * chunks, CANDIDATE_FLOOR)
    selective = sorted(term for term, df in present.items() if df <= most)
    rarest = sorted(present, key=lambda term: (present[term], term))[:1]
    return LexicalQuery(sorted(weights), selective or rarest, SparseVector(weights, TERM_SPACE))


def _text_statement(lexical: LexicalQuery, model_id: int, k: int, since: dt.date | None, until: dt.date | None,
                    filters: Mapping[str, str] | None) -> tuple[sql.Composed, dict[str, Any]]:
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    conditions, params = _conditions(model_id, since, until, filters)
    params.update(terms=lexical.candidate_ids, weights=lexical.weights, k=k)
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


def search_vector(conn: psycopg.Connection, query_vector: np.ndarray, model_id: int, *, k: int = 10,
                  since: dt.date | None = None, until: dt.date | None = None,
                  filters: Mapping[str, str] | None = None, tuning: SearchTuning = SearchTuning()) -> list[SearchHit]:
    statement, params = _statement(query_vector, model_id, k, since, until, filters)
    try:
        with connection_guard("searching"), conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
            apply_ann_settings(conn, tuning.ann_settings(conn))
            rows = cursor.execute(statement, params).fetchall()
    except psycopg.errors.DataException as exc:
        if "different vector dimensions" not in str(exc):
            raise
        raise DimensionMismatchError(
            f"the query vector has {len(query_vector)} dimensions but the stored vectors have "
            f"{catalog.chunks_dimension(conn)}: embed the query with the model that built the store") from exc
    return [
        SearchHit(rank=i + 1, similarity=1.0 - float(r["distance"]), doc_id=r["doc_id"], ingest_date=r["ingest_date"],
                  seq=r["seq"], chunk_id=r["chunk_id"], text=r["text"], metadata=r["metadata"],
                  score=1.0 - float(r["distance"]))
        for i, r in enumerate(rows)
    ]


def search_text(conn: psycopg.Connection, query: str, model_id: int, *, k: int = 10,
                since: dt.date | None = None, until: dt.date | None = None,
                filters: Mapping[str, str] | None = None) -> list[SearchHit]:
    """Okapi BM25 over title, headings and text (pipeline/lexical), computed in PostgreSQL: chunks holding
    any of the query's terms, best score first. Identifiers match whole and by their parts."""
    with connection_guard("searching the text"), conn.cursor(row_factory=dict_row) as cursor:
        lexical = lexical_query(conn, query, model_id)
        if not lexical.term_ids:
            return []
        statement, params = _text_statement(lexical, model_id, k, since, until, filters)
        rows = cursor.execute(statement, params).fetchall()
    return [
        SearchHit(rank=i + 1, similarity=None, doc_id=r["doc_id"], ingest_date=r["ingest_date"], seq=r["seq"],
                  chunk_id=r["chunk_id"], text=r["text"], metadata=r["metadata"], text_score=float(r["text_score"]),
                  score=float(r["text_score"]))
        for i, r in enumerate(rows)
    ]


def with_context(conn: psycopg.Connection, hits: Sequence[SearchHit], window: int, model_id: int) -> list[SearchHit]:
    """Each hit with the chunks ``window`` positions before and after it in the same document version
    (neighbours share ``overlap_tokens`` of text with it: the chunker's overlap)."""
    if window < 1 or not hits:
        return list(hits)
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
    return [replace(hit, context=context.get(hit.chunk_id, [])) for hit in hits]


def explain_vector(conn: psycopg.Connection, query_vector: np.ndarray, model_id: int, *, k: int = 10,
                   since: dt.date | None = None, until: dt.date | None = None,
                   filters: Mapping[str, str] | None = None, tuning: SearchTuning = SearchTuning()) -> str:
    """EXPLAIN ANALYZE of the search: proves which indexes (or exact scans) answer it."""
    statement, params = _statement(query_vector, model_id, k, since, until, filters)
    with connection_guard("explaining the search"), conn.transaction():
        apply_ann_settings(conn, tuning.ann_settings(conn))
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    # The plan inlines the query vector: hundreds of floats per line that hide the plan itself.
    return _VECTOR_LITERAL.sub(lambda m: f"'[{m.group(1).count(',') + 1} dims]'::vector", "\n".join(r[0] for r in rows))


def explain_text(conn: psycopg.Connection, query: str, model_id: int, *, k: int = 10,
                 since: dt.date | None = None, until: dt.date | None = None,
                 filters: Mapping[str, str] | None = None) -> str:
    """EXPLAIN ANALYZE of the text branch: shows the GIN index on each day's lexical terms (or not)."""
    lexical = lexical_query(conn, query, model_id)
    if not lexical.term_ids:
        return "no stored chunk holds any term of the query"
    statement, params = _text_statement(lexical, model_id, k, since, until, filters)
    with connection_guard("explaining the text search"):
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    return "\n".join(r[0] for r in rows)


def search(conn: psycopg.Connection, embedder: Embedder, query: str, *, k: int = 10,
           since: dt.date | None = None, until: dt.date | None = None,
           filters: Mapping[str, str] | None = None, tuning: SearchTuning = SearchTuning(),
           mode: str = "hybrid", per_doc: int | None = None, window: int = 0) -> list[SearchHit]:
    """The ``k`` best chunks for ``query`` in ``mode``; ``per_doc`` caps hits per document, ``window``
    adds that many neighbouring chunks on each side as context. Text mode never runs the model."""
    model_id = search_model_id(conn, embedder, query)
    vector = None if mode == "text" else embedder.encode([query])[0]
    return search_embedded(conn, query, vector, model_id, k=k, since=since, until=until, filters=filters,
                           tuning=tuning, mode=mode, per_doc=per_doc, window=window)


def candidate_count(k: int, mode: str, per_doc: int | None, tuning: SearchTuning = SearchTuning()) -> int:
    """How many hits each branch fetches: more than k when something is cut afterwards (fusion,
    per-document limits)."""
    return k if mode == "vector" and per_doc is None else max(k, tuning.candidates, k * 4)


def search_embedded(conn: psycopg.Connection, query: str, vector: np.ndarray | None, model_id: int, *, k: int = 10,
                    since: dt.date | None = None, until: dt.date | None = None,
                    filters: Mapping[str, str] | None = None, tuning: SearchTuning = SearchTuning(),
                    mode: str = "hybrid", per_doc: int | None = None, window: int = 0,
                    text_hits: Callable[[], list[SearchHit]] | None = None) -> list[SearchHit]:
    """``search`` with the query already embedded (``vector`` may be None in text mode). ``text_hits``
    supplies the text branch's ``candidate_count`` hits when a caller ran it elsewhere (the search
    server runs it on a second connection while the query is embedded and the vector branch runs)."""
    if mode not in MODES:
        raise ConfigError(f"search mode must be one of {', '.join(MODES)}, got {mode!r}")
    if per_doc is not None and per_doc < 1:
        raise ConfigError(f"per_doc must be >= 1, got {per_doc}")
    if not query.strip():
        raise ConfigError("the search query is empty")
    pool = candidate_count(k, mode, per_doc, tuning)

    def text() -> list[SearchHit]:
        if text_hits is not None:
            return text_hits()
        return search_text(conn, query, model_id, k=pool, since=since, until=until, filters=filters)

    if mode == "text":
        hits = text()
    else:
        if vector is None:
            raise ConfigError(f"{mode} search needs the query's vector")
        nearest = search_vector(conn, vector, model_id, k=pool, since=since, until=until, filters=filters,
                                tuning=tuning)
        hits = nearest if mode == "vector" else fuse(nearest, text(), tuning.rrf_k, method=tuning.fusion,
                                                     vector_weight=tuning.vector_weight)
    return with_context(conn, limit_per_document(hits, per_doc, k), window, model_id)
