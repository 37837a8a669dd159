"""The two branches of a search: ``vector`` (cosine distance ``<=>``, similarity ``1 - distance``) and
``text`` (Okapi BM25 over each chunk's stored term weights, IDF from the live term statistics); hybrid
fuses them (fusion.py, in ``pipeline.query.service``). Metadata, date and version filters are the same
SQL for both (``storage/chunk_search.py``); each document's latest version only (``as_of``: its latest
version stored by that day, unless deleted by then)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg
from pgvector import SparseVector

from pipeline.lexical import bm25, pruning
from pipeline.lexical.expansion import expanded_query
from pipeline.lexical.terms import TERM_SPACE
from pipeline.query import feedback
from pipeline.query.hits import SearchHit
from pipeline.storage import catalog, chunk_search, readable_search, term_stats
from pipeline.storage.chunk_search import LexicalTerms, MatchedChunk, Scope
from pipeline.storage.sqlstate import connection_guard
from pipeline.storage.vector_indexes import AnnSettings, walked_ef_search


@dataclass(frozen=True)
class VectorWalk:
    """The ANN settings a vector search runs with, and why: the ef_search its indexes record, and how
    many HNSW indexes the days it searches lie in."""
    ann: AnnSettings
    recorded_ef_search: int
    hnsw_indexes: int

    def describe(self) -> str | None:
        """One line for ``--explain`` (None when no HNSW index is walked)."""
        if self.hnsw_indexes == 0:
            return None
        if self.ann.ef_search == self.recorded_ef_search or self.hnsw_indexes == 1:
            walked = "1 HNSW index" if self.hnsw_indexes == 1 else f"{self.hnsw_indexes} HNSW indexes"
            return f"docvec plan: hnsw.ef_search {self.ann.ef_search} over {walked}"
        return (f"docvec plan: hnsw.ef_search {self.ann.ef_search} per index over {self.hnsw_indexes} HNSW indexes "
                f"(the indexes record {self.recorded_ef_search} for one)")


def vector_walk(conn: psycopg.Connection[Any], ef_search: int | None = None, probes: int | None = None, *,
                since: dt.date | None = None, until: dt.date | None = None,
                as_of: dt.date | None = None) -> VectorWalk:
    """The session's ANN settings: what the store's indexes were built and their recall checked for
    (recorded on each index by the vector_index step), unless the caller asks for other values; the
    ef_search shortened when the days searched (``since`` to ``until``, none after ``as_of``) lie in
    several HNSW-indexed partitions (``vector_indexes.walked_ef_search``)."""
    last = until if as_of is None else min(until or as_of, as_of)
    recorded = catalog.recorded_search(conn, since, last)
    walked = walked_ef_search(recorded.ann.ef_search, recorded.hnsw_rows)
    return VectorWalk(AnnSettings(ef_search=ef_search or walked, probes=probes or recorded.ann.probes),
                      recorded.ann.ef_search, recorded.hnsw_walked)


def ann_settings(conn: psycopg.Connection[Any], ef_search: int | None = None, probes: int | None = None, *,
                 since: dt.date | None = None, until: dt.date | None = None,
                 as_of: dt.date | None = None) -> AnnSettings:
    """``vector_walk``'s settings."""
    return vector_walk(conn, ef_search, probes, since=since, until=until, as_of=as_of).ann


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
        ann = ann_settings(conn, ef_search, probes, since=since, until=until, as_of=as_of)
    finder = readable_search.nearest if as_principals else chunk_search.nearest
    nearest = finder(conn, query_vector, _scope(model_id, since, until, filters, as_of), k, ann)
    return [_hit(i + 1, chunk) for i, chunk in enumerate(nearest)]


# The first round of the text branch aims at this many candidates per result wanted (estimated as if
# the query's terms were independent, pipeline/lexical/pruning.py), and at least FIRST_ROUND_FLOOR: most
# queries settle in one or two rounds of a few thousand chunks, whatever the commonness of their words.
FIRST_ROUND_PER_RESULT = 4
FIRST_ROUND_FLOOR = 100
# No round scores more chunks than this (estimated): proving the last places of a top k can take every
# chunk holding a common word when they tie (one word of a short query, held once by each of 200,000
# chunks of equal length). Such a search then ends on the widest round within it; its hits scoring at
# least that round's threshold are exact, the ones below are the best of what it scored.
MAX_ROUND_CHUNKS = 5_000


@dataclass(frozen=True)
class LexicalQuery:
    """A query's side of BM25: its terms' IDF weights over the days stored (``storage/term_stats``), and
    the plan that picks which chunks each round scores (pipeline/lexical/pruning.py). Terms no stored
    chunk holds match nothing."""
    term_ids: list[int]
    weights: SparseVector
    plan: pruning.PruningPlan

    def terms(self, candidates: pruning.Candidates) -> LexicalTerms:
        return LexicalTerms(any_of=candidates.any_of, all_of=candidates.all_of, weights=self.weights)


@dataclass(frozen=True)
class TextRounds:
    """The BM25 top k, the candidate sets scored to find it, in order, and the score down to which it is
    exact (0.0: all of it; above 0 where the rounds hit MAX_ROUND_CHUNKS)."""
    matches: list[MatchedChunk]
    rounds: list[pruning.Candidates]
    exact_down_to: float = 0.0


def lexical_query(conn: psycopg.Connection[Any], query: str, model_id: int) -> LexicalQuery:
    """The BM25 side of ``query`` over ``model_id``'s stored chunks."""
    wanted = list(bm25.query_terms(query))
    tiers = range(len(bm25.IMPACT_TIERS))
    counted = [*wanted, *(bm25.impact_marker(t, tier) for t in wanted for tier in tiers), bm25.IMPACT_TERM]
    with connection_guard("searching the text"):
        chunks, frequencies = term_stats.frequencies(conn, model_id, counted)
    present = {term: frequencies[term] for term in wanted if frequencies.get(term, 0) > 0}
    weights = {term: bm25.idf(df, chunks) for term, df in present.items()}
    statistics = [pruning.TermStatistics(term, weights[term], df,
                                         tuple(frequencies.get(bm25.impact_marker(term, tier), 0) for tier in tiers))
                  for term, df in present.items()]
    # Days indexed before impact markers existed (until their next run rebuilds them) have none.
    tiered = chunks > 0 and frequencies.get(bm25.IMPACT_TERM, 0) >= chunks
    return LexicalQuery(sorted(weights), SparseVector(weights, TERM_SPACE),
                        pruning.PruningPlan(statistics, chunks, tiered=tiered))


def text_rounds(conn: psycopg.Connection[Any], lexical: LexicalQuery, scope: Scope, k: int,
                proven: int | None = None) -> TextRounds:
    """The ``k`` chunks in ``scope`` with the highest BM25 scores (exactly those: ties by chunk id),
    scoring candidate sets until one proves that no chunk outside it can rank; within MAX_ROUND_CHUNKS
    a round (``TextRounds.exact_down_to``). ``proven`` (at most ``k``): prove only the first places, and
    fill the rest with the best of the chunks the proving rounds scored (hybrid fusion's pool: its
    first places decide, and proving 50 places costs rounds of far more chunks than proving 10)."""
    plan = lexical.plan
    places = min(proven or k, k)
    candidates = plan.first(max(FIRST_ROUND_FLOOR, FIRST_ROUND_PER_RESULT * places))
    if candidates.estimated > MAX_ROUND_CHUNKS:
        candidates = plan.widest_within(MAX_ROUND_CHUNKS)
        if candidates.estimated > MAX_ROUND_CHUNKS:  # even the strongest chunks are too many to prove
            return _best_effort(conn, lexical, scope, k, [], [], candidates, math.inf)
    rounds: list[pruning.Candidates] = []
    while True:
        rounds.append(candidates)
        matches = chunk_search.lexical_matches(conn, lexical.terms(candidates), scope, k)
        scores = [m.text_score or 0.0 for m in matches]
        if candidates.settled(scores, places):
            return TextRounds(matches, rounds)
        # Enough in scope: every chunk that could still rank scores at least the k-th found (one more
        # round settles). Too few: the scope (dates, metadata, versions, readers) left out most candidates.
        wider = plan.candidates(scores[places - 1]) if len(scores) >= places else plan.lower(candidates)
        if candidates.covers(wider):
            # The k-th score fell short of this round's level, but no more chunks can reach it: the lookups
            # for it select no chunk this round did not score, so its top k is already the exact one.
            return TextRounds(matches, rounds)
        if wider.estimated > MAX_ROUND_CHUNKS:
            within = plan.widest_within(MAX_ROUND_CHUNKS)
            if within.complete or within.threshold >= candidates.threshold:  # no wider round fits
                return _best_effort(conn, lexical, scope, k, matches, rounds, wider, candidates.threshold)
            wider = within
        candidates = wider


def _best_effort(conn: psycopg.Connection[Any], lexical: LexicalQuery, scope: Scope, k: int,
                 matches: list[MatchedChunk], rounds: list[pruning.Candidates], wider: pruning.Candidates,
                 exact_down_to: float) -> TextRounds:
    """The proven hits (scoring ``exact_down_to`` or more), then the best of the first MAX_ROUND_CHUNKS
    chunks of the ``wider`` round that would have proven the rest."""
    more = chunk_search.lexical_matches(conn, lexical.terms(wider), scope, k, scan_limit=MAX_ROUND_CHUNKS)
    merged = {m.chunk_id: m for m in [*matches, *more]}
    best = sorted(merged.values(), key=lambda m: (-(m.text_score or 0.0), m.chunk_id))[:k]
    return TextRounds(best, [*rounds, wider], exact_down_to=exact_down_to)


def search_text(conn: psycopg.Connection[Any], query: str, model_id: int, *, k: int = 10,
                since: dt.date | None = None, until: dt.date | None = None,
                filters: Mapping[str, str] | None = None, as_of: dt.date | None = None,
                proven: int | None = None) -> list[SearchHit]:
    """Okapi BM25 over title, headings and text (pipeline/lexical), computed in PostgreSQL: the exact top
    ``k`` of the chunks holding any of the query's terms, best score first (``proven``: its first places
    exact, the rest the best of the chunks scored to prove them; ``text_rounds``). Identifiers match
    whole and by their parts."""
    lexical = lexical_query(conn, query, model_id)
    if not lexical.term_ids:
        return []
    found = text_rounds(conn, lexical, _scope(model_id, since, until, filters, as_of), k, proven)
    return [_hit(i + 1, chunk) for i, chunk in enumerate(found.matches)]


def with_context(conn: psycopg.Connection[Any], hits: Sequence[SearchHit], window: int,
                 model_id: int) -> list[SearchHit]:
    """Each hit with the chunks ``window`` positions before and after it in the same document version
    (neighbours share ``overlap_tokens`` of text with it: the chunker's overlap)."""
    if window < 1 or not hits:
        return list(hits)
    context = chunk_search.neighbours(conn, hits, window, model_id)
    return [replace(hit, context=context.get(hit.chunk_id, [])) for hit in hits]


def opening_similarities(conn: psycopg.Connection[Any], query_vector: np.ndarray, hits: Sequence[SearchHit],
                         model_id: int) -> dict[str, float]:
    """How near each hit's document opens to the query: its first chunk's similarity, in the hit's own
    version (``fusion.with_openings`` weighs it into hybrid document scores)."""
    return chunk_search.opening_similarities(conn, query_vector, hits, model_id)


def feedback_text(conn: psycopg.Connection[Any], query: str, nearest: Sequence[SearchHit], text: Sequence[SearchHit],
                  ranked: Sequence[SearchHit], model_id: int, weight: float, k: int) -> feedback.FeedbackText:
    """The text branch again, over the chunks either branch found, for ``query`` with feedback terms from
    the first documents of ``ranked`` (``pipeline/lexical/expansion.py``): the best ``k`` as text hits,
    and the terms added.
    The feedback chunks' stored weights and the candidates' scores are read in their own versions, the
    IDFs from the live term statistics, all on the search's connection (row-level security decides them
    as it decides every other read)."""
    sources = feedback.feedback_chunks(ranked)
    stored = chunk_search.stored_lexical(conn, sources, model_id)
    wanted = list(bm25.query_terms(query))
    with connection_guard("searching the text"):
        chunks, frequencies = term_stats.frequencies(conn, model_id, [*wanted, *(t for w in stored.values() for t in w)])
    idf = {term: bm25.idf(df, chunks) for term, df in frequencies.items() if df > 0}
    query_idf = {term: idf[term] for term in wanted if term in idf}
    expanded = expanded_query(query_idf, list(stored.values()), idf, weight)
    candidates = feedback.pool(nearest, text)
    scores = chunk_search.lexical_scores(conn, candidates, SparseVector(expanded, TERM_SPACE), model_id)
    gained = {term: value - query_idf.get(term, 0.0) for term, value in expanded.items()}
    added = sorted((term for term, more in gained.items() if more > 0.0), key=lambda term: (-gained[term], term))
    return feedback.FeedbackText(feedback.text_hits(candidates, scores, k), added, sources)


# An index scan of one of docvec's HNSW indexes (``vector_indexes.index_name``) in a plan.
_HNSW_SCAN = re.compile(r"Index Scan using \S+_hnsw_\d+ ")


def explain_vector(conn: psycopg.Connection[Any], query_vector: np.ndarray, model_id: int, *, k: int = 10,
                   since: dt.date | None = None, until: dt.date | None = None,
                   filters: Mapping[str, str] | None = None, ef_search: int | None = None,
                   probes: int | None = None, as_of: dt.date | None = None, as_principals: bool = False) -> str:
    """EXPLAIN ANALYZE of the vector branch: proves which indexes (or exact scans) answer it (as
    principals: first which plan the readable share chose, as ``search_vector``)."""
    with connection_guard("explaining the search"):
        walk = vector_walk(conn, ef_search, probes, since=since, until=until, as_of=as_of)
    explain = readable_search.explain_nearest if as_principals else chunk_search.explain_nearest
    plan = explain(conn, query_vector, _scope(model_id, since, until, filters, as_of), k, walk.ann)
    walked = walk.describe()
    # Only where an HNSW index answers: an exact search (few readable chunks, unindexed days) walks none.
    return f"{plan}\n{walked}" if walked is not None and _HNSW_SCAN.search(plan) else plan


def explain_text(conn: psycopg.Connection[Any], query: str, model_id: int, *, k: int = 10,
                 since: dt.date | None = None, until: dt.date | None = None,
                 filters: Mapping[str, str] | None = None, as_of: dt.date | None = None) -> str:
    """EXPLAIN ANALYZE of the text branch's last round, after a line per round: which candidates each
    scored (pipeline/lexical/pruning.py), and the GIN index on each day's lexical terms (or not)."""
    lexical = lexical_query(conn, query, model_id)
    if not lexical.term_ids:
        return "no stored chunk holds any term of the query"
    scope = _scope(model_id, since, until, filters, as_of)
    found = text_rounds(conn, lexical, scope, k)
    rounds = found.rounds
    described = [f"BM25 round {n}: " + ("every chunk holding a query term" if c.complete else
                 f"chunks that can score {c.threshold:.3f} or more ({len(c.any_of) + len(c.all_of)} GIN lookups, "
                 f"~{c.estimated:,.0f} chunks estimated)") for n, c in enumerate(rounds, 1)]
    if found.exact_down_to:
        proven = ("no hit is proven" if math.isinf(found.exact_down_to) else
                  f"hits scoring {found.exact_down_to:.3f} or more are exact")
        described.append(f"BM25 stopped at {MAX_ROUND_CHUNKS:,} chunks a round: {proven}; the last round scored "
                         f"the first {MAX_ROUND_CHUNKS:,} of its candidates")
    # The last round as it ran: scan-limited when the search ended on the round budget.
    plan = chunk_search.explain_lexical(conn, lexical.terms(rounds[-1]), scope, k,
                                        scan_limit=MAX_ROUND_CHUNKS if found.exact_down_to else None)
    return "\n".join([*described, plan])
