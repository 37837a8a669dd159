"""What a search returns: ranked chunks with the scores of the branches that found them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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
    score: float = 0.0  # what the mode ranks by: similarity, text score, or the chunk's fused score
    context: list[dict[str, Any]] | None = None  # neighbouring chunks (seq, text) when a window was asked
    # hybrid: the document's fused score (its opening weighed in, with relative fusion), which orders the hits
    document_score: float | None = None


def metadata_int(metadata: Mapping[str, Any], key: str) -> int | None:
    """A whole number of a chunk's metadata (``page``, ``last_page``, ``slide``), None when absent or not one."""
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def place(metadata: Mapping[str, Any]) -> str | None:
    """Where a chunk sits in its file, as people cite it: ``page 12``, ``pages 12–13`` or ``slide 4``,
    when its metadata has one (PDF pages, presentation slides)."""
    page, last = metadata_int(metadata, "page"), metadata_int(metadata, "last_page")
    if page is not None:
        return f"pages {page}–{last}" if last is not None and last != page else f"page {page}"
    slide = metadata_int(metadata, "slide")
    return None if slide is None else f"slide {slide}"
