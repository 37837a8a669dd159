"""A hybrid search's text branch re-scored with feedback terms (``pipeline/lexical/expansion.py``): which
chunks give the terms, which are re-scored, and the hits that come out. No I/O: ``branches`` reads the
stored weights and term frequencies, ``retrieval_sweep`` passes them from memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from pipeline.lexical.expansion import FEEDBACK_DOCUMENTS, FEEDBACK_TERMS, StoredEntry, expanded_query, rescored
from pipeline.query.hits import SearchHit


def feedback_chunks(ranked: Sequence[SearchHit], documents: int = FEEDBACK_DOCUMENTS) -> list[str]:
    """The best chunk (the first listed) of each of the first ``documents`` documents of ``ranked``."""
    chunks: dict[str, str] = {}
    for hit in ranked:
        if len(chunks) == documents:
            break
        chunks.setdefault(hit.doc_id, hit.chunk_id)
    return list(chunks.values())


def pool(*branches: Sequence[SearchHit]) -> list[SearchHit]:
    """The branches' hits, each chunk once (its first listing): the candidates feedback re-scores."""
    first: dict[str, SearchHit] = {}
    for hits in branches:
        for hit in hits:
            first.setdefault(hit.chunk_id, hit)
    return list(first.values())


def rescored_text(candidates: Sequence[SearchHit], ranked: Sequence[SearchHit], entries: Mapping[str, StoredEntry],
                  query: Mapping[int, float], idf: Mapping[int, float], weight: float, k: int, *,
                  documents: int = FEEDBACK_DOCUMENTS, terms: int = FEEDBACK_TERMS) -> list[SearchHit]:
    """The text branch over ``candidates`` for the query expanded from ``ranked``'s first documents:
    the best ``k`` of them by BM25 for ``query`` (term id → IDF) plus the feedback terms, as text hits
    (``text_score`` the new score, no similarity). ``entries``: each candidate's stored weights and prior
    (a candidate without one is left out); ``idf``: the IDF of every term the feedback chunks hold.
    ``documents`` and ``terms``: how many give feedback terms, and how many terms they give."""
    feedback = [entries[chunk].weights for chunk in feedback_chunks(ranked, documents) if chunk in entries]
    expanded = expanded_query(query, feedback, idf, weight, terms)
    by_chunk = {hit.chunk_id: hit for hit in candidates}
    scored = rescored({chunk: entries[chunk] for chunk in by_chunk if chunk in entries}, expanded)[:k]
    return [replace(by_chunk[chunk], rank=i + 1, similarity=None, text_score=score, score=score,
                    document_score=None, context=None)
            for i, (chunk, score) in enumerate(scored)]
