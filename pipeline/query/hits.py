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
    text_score: float | None = None  # ts_rank_cd; None when only the vector branch found it
    score: float = 0.0  # what the mode ranks by: similarity, text score, or the fused RRF score
    context: list[dict[str, Any]] | None = None  # neighbouring chunks (seq, text) when a window was asked
