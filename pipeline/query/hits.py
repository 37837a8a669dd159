"""What a search returns: ranked chunks with the scores of the branches that found them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SearchHit:
    rank: int
    similarity: float | None  # vector: 1 - cosine distance; None when only the text branch found it
    doc_id: str
    ingest_date: dt.date
    seq: int
    chunk_id: str
    text: str
    metadata: dict[str, Any]
    text_score: float | None = None  # BM25 (times the chunk's list prior); None when only the vector branch found it
    score: float = 0.0  # what the mode ranks by: similarity, text score, or the chunk's fused RRF score
    context: list[dict[str, Any]] | None = None  # neighbouring chunks (seq, text) when a window was asked
    document_score: float | None = None  # hybrid: the document's fused RRF score, which orders the hits
