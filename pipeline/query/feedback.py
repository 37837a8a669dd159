"""A hybrid search's text branch scored again with feedback terms (``pipeline/lexical/expansion.py``):
which chunks give the terms, which are scored again, and the hits that come out. No I/O: ``branches``
reads the weights and scores from the store, ``retrieval_sweep`` computes them in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pipeline.lexical.expansion import FEEDBACK_DOCUMENTS
from pipeline.lexical.terms import surface_forms
from pipeline.query.hits import SearchHit


@dataclass(frozen=True)
class FeedbackText:
    """The text branch scored again (``hits``), the terms the feedback added to the query or weighed more
    (``added``: term ids, heaviest first) and the chunks they came from (``sources``)."""
    hits: list[SearchHit]
    added: list[int]
    sources: list[SearchHit]

    def words(self) -> list[str]:
        """The added terms as they read in their chunks (titles and headings included)."""
        forms: dict[int, str] = {}
        for hit in self.sources:
            fields = (str(hit.metadata.get("title") or ""), str(hit.metadata.get("section") or ""), hit.text)
            for field in fields:
                for term, form in surface_forms(field).items():
                    forms.setdefault(term, form)
        return [forms.get(term, f"#{term}") for term in self.added]


def feedback_chunks(ranked: Sequence[SearchHit], documents: int = FEEDBACK_DOCUMENTS) -> list[SearchHit]:
    """The best chunk (the first listed) of each of the first ``documents`` documents of ``ranked``."""
    chunks: dict[str, SearchHit] = {}
    for hit in ranked:
        if len(chunks) == documents:
            break
        chunks.setdefault(hit.doc_id, hit)
    return list(chunks.values())


def pool(*branches: Sequence[SearchHit]) -> list[SearchHit]:
    """The branches' hits, each chunk once (its first listing): the candidates feedback scores again."""
    first: dict[str, SearchHit] = {}
    for hits in branches:
        for hit in hits:
            first.setdefault(hit.chunk_id, hit)
    return list(first.values())


def text_hits(candidates: Sequence[SearchHit], scores: Mapping[str, float], k: int) -> list[SearchHit]:
    """The ``k`` candidates with the best ``scores`` (BM25 for the expanded query, by chunk id) as the
    text branch's hits: ``text_score`` the new score, no similarity; ties by chunk id, a candidate
    without a positive score (it holds none of the terms) left out."""
    by_chunk = {hit.chunk_id: hit for hit in candidates}
    ranked = sorted(((chunk, score) for chunk, score in scores.items() if score > 0.0 and chunk in by_chunk),
                    key=lambda item: (-item[1], item[0]))[:k]
    return [replace(by_chunk[chunk], rank=i + 1, similarity=None, text_score=score, score=score,
                    document_score=None, context=None)
            for i, (chunk, score) in enumerate(ranked)]
