"""Combining ranked lists: reciprocal rank fusion of the vector and text branches, and per-document
limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pipeline.query.hits import SearchHit


def fuse(vector_hits: Sequence[SearchHit], text_hits: Sequence[SearchHit], rrf_k: int = 60) -> list[SearchHit]:
    """Reciprocal rank fusion: each hit scores ``sum(1 / (rrf_k + rank))`` over the lists that found it,
    and keeps both its similarity and its text score. Ties go to the higher vector similarity."""
    fused: dict[str, dict[str, Any]] = {}
    for hits, field in ((vector_hits, "similarity"), (text_hits, "text_score")):
        for hit in hits:
            entry = fused.setdefault(hit.chunk_id, {"hit": hit, "score": 0.0, "similarity": None, "text_score": None})
            entry["score"] += 1.0 / (rrf_k + hit.rank)
            entry[field] = getattr(hit, field)
    ordered = sorted(fused.values(), key=lambda e: (-e["score"], -(e["similarity"] or -1.0), e["hit"].chunk_id))
    return [replace(e["hit"], rank=i + 1, similarity=e["similarity"], text_score=e["text_score"], score=e["score"])
            for i, e in enumerate(ordered)]


def limit_per_document(hits: Sequence[SearchHit], per_doc: int | None, k: int) -> list[SearchHit]:
    """At most ``per_doc`` hits of each document (the best ones), then the first ``k``, re-ranked."""
    kept: list[SearchHit] = []
    seen: Counter[str] = Counter()
    for hit in hits:
        if per_doc is not None and seen[hit.doc_id] >= per_doc:
            continue
        seen[hit.doc_id] += 1
        kept.append(hit)
        if len(kept) == k:
            break
    return [replace(hit, rank=i + 1) for i, hit in enumerate(kept)]
