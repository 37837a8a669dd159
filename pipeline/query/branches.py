"""The two branches of a search: ``vector`` (cosine distance ``<=>``, similarity ``1 - distance``) and
``text`` (Okapi BM25 over each chunk's stored term weights, IDF from the live term statistics); hybrid
fuses them (fusion.py, in ``pipeline.query.service``). Metadata, date and version filters are the same
SQL for both (``storage/chunk_search.py``); each document's latest version only (``as_of``: its latest
version stored by that day, unless deleted by then)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg
from pgvector import SparseVector

from pipeline.lexical import bm25
from pipeline.lexical.terms import TERM_SPACE
from pipeline.query.hits import SearchHit
from pipeline.storage import catalog, chunk_search, readable_search, term_stats
from pipeline.storage.chunk_search import LexicalTerms, MatchedChunk, Scope
from pipeline.storage.sqlstate import connection_guard
from pipeline.storage.vector_indexes import AnnSettings


def ann_settings(conn: psycopg.Connection[Any], ef_search: int | None = None, probes: int | None = None) -> AnnSettings:
    """The session's ANN settings: what the store's indexes were built and their recall checked for
    (recorded on each index by the vector_index step), unless the caller asks for other values."""
    recorded = catalog.search_settings(conn)
    return AnnSettings(ef_search=ef_search or recorded.ef_search, probes=probes or recorded.probes)


def _scope(model_id: int, since: dt.date | None, until: dt.date | None, filters: Mapping[str, str] | None,
           as_of: dt.date | None) -> Scope:
    return Scope(model_id=model_id, since=since, until=until, filters=dict(filters or {}), as_of=as_of)


def _hit(rank: int, chunk: MatchedChunk) -> SearchHit:
    similarity = None if chunk.distance is None else 1.0 - chunk.distance
    return SearchHit(rank=rank, similarity=similarity, doc_id=chunk.doc_id, ingest_date=chunk.ingest_date,
                     seq=chunk.seq, chunk_id=chunk.chunk_id, text=chunk.text, metadata=chunk.metadata,
                     text_score=chunk.text_score,
                     score=similarity if similarity is not None else chunk.text_score or 0.0)


def search_vector(conn: psycopg.Connection[Any], query_vector: np.ndarray, model_id: int, *, k: int = 10,
                  since: dt.date | None = None, until: dt.date | None = None,
                  filters: Mapping[str, str] | None = None, ef_search: int | None = None,
                  probes: int | None = None, as_of: dt.date | None = None,
                  as_principals: bool = False) -> list[SearchHit]:
    """The ``k`` chunks nearest to ``query_vector`` among ``model_id``'s, most similar first.
    ``as_principals``: the session searches as principals (``storage/access.acting_as``), so the
    readable share decides between the index walk and an exact search (``storage/readable_search``)."""
    with connection_guard("searching"):
        ann = ann_settings(conn, ef_search, probes)
    finder = readable_search.nearest if as_principals else chunk_search.nearest
    nearest = finder(conn, query_vector, _scope(model_id, since, until, filters, as_of), k, ann)
    return [_hit(i + 1, chunk) for i, chunk in enumerate(nearest)]


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

    @property
    def terms(self) -> LexicalTerms:
        return LexicalTerms(candidate_ids=self.candidate_ids, weights=self.weights)


def lexical_query(conn: psycopg.Connection[Any], query: str, model_id: int) -> LexicalQuery:
    """The BM25 side of ``query`` over ``model_id``'s stored chunks."""
    wanted = bm25.query_terms(query)
    with connection_guard("searching the text"):
        chunks, frequencies = term_stats.frequencies(conn, model_id, wanted)
    present = {term: df for term, df in frequencies.items() if df > 0}
    weights = {term: bm25.idf(df, chunks) for term, df in present.items()}
    most = max(CANDIDATE_TERM_SHARE * chunks, CANDIDATE_FLOOR)
    selective = sorted(term for term, df in present.items() if df <= most)
    rarest = sorted(present, key=lambda term: (present[term], term))[:1]
    return LexicalQuery(sorted(weights), selective or rarest, SparseVector(weights, TERM_SPACE))


def search_text(conn: psycopg.Connection[Any], query: str, model_id: int, *, k: int = 10,
                since: dt.date | None = None, until: dt.date | None = None,
                filters: Mapping[str, str] | None = None, as_of: dt.date | None = None) -> list[SearchHit]:
    """Okapi BM25 over title, headings and text (pipeline/lexical), computed in PostgreSQL: chunks holding
    any of the query's terms, best score first. Identifiers match whole and by their parts."""
    lexical = lexical_query(conn, query, model_id)
    if not lexical.term_ids:
        return []
    matches = chunk_search.lexical_matches(conn, lexical.terms, _scope(model_id, since, until, filters, as_of), k)
    return [_hit(i + 1, chunk) for i, chunk in enumerate(matches)]


def with_context(conn: psycopg.Connection[Any], hits: Sequence[SearchHit], window: int,
                 model_id: int) -> list[SearchHit]:
    """Each hit with the chunks ``window`` positions before and after it in the same document version
    (neighbours share ``overlap_tokens`` of text with it: the chunker's overlap)."""
    if window < 1 or not hits:
        return list(hits)
    context = chunk_search.neighbours(conn, hits, window, model_id)
    return [replace(hit, context=context.get(hit.chunk_id, [])) for hit in hits]


def explain_vector(conn: psycopg.Connection[Any], query_vector: np.ndarray, model_id: int, *, k: int = 10,
                   since: dt.date | None = None, until: dt.date | None = None,
                   filters: Mapping[str, str] | None = None, ef_search: int | None = None,
                   probes: int | None = None, as_of: dt.date | None = None, as_principals: bool = False) -> str:
    """EXPLAIN ANALYZE of the vector branch: proves which indexes (or exact scans) answer it (as
    principals: first which plan the readable share chose, as ``search_vector``)."""
    with connection_guard("explaining the search"):
        ann = ann_settings(conn, ef_search, probes)
    explain = readable_search.explain_nearest if as_principals else chunk_search.explain_nearest
    return explain(conn, query_vector, _scope(model_id, since, until, filters, as_of), k, ann)


def explain_text(conn: psycopg.Connection[Any], query: str, model_id: int, *, k: int = 10,
                 since: dt.date | None = None, until: dt.date | None = None,
                 filters: Mapping[str, str] | None = None, as_of: dt.date | None = None) -> str:
    """EXPLAIN ANALYZE of the text branch: shows the GIN index on each day's lexical terms (or not)."""
    lexical = lexical_query(conn, query, model_id)
    if not lexical.term_ids:
        return "no stored chunk holds any term of the query"
    return chunk_search.explain_lexical(conn, lexical.terms, _scope(model_id, since, until, filters, as_of), k)
