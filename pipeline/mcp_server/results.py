"""What ``docvec mcp``'s tools return, as plain JSON for a model to read: each hit or chunk with where it
comes from (document id, title, section, page or slide, day) and a ``citation`` it can quote as is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.query.hits import SearchHit, metadata_int, place
from pipeline.query.service import SearchResult
from pipeline.storage.chunk_search import MatchedChunk


def _text(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return value.strip() or None if isinstance(value, str) else None


def citation(doc_id: str, day: dt.date, metadata: Mapping[str, Any]) -> str:
    """``Title — Section (doc_id, page N, YYYY-MM-DD)``; the document id stands for a missing title, and
    the section and page are left out where the document has none."""
    title, section = _text(metadata, "title"), _text(metadata, "section")
    head = (title or doc_id) + (f" — {section}" if section else "")
    where = [doc_id] if title else []
    where += [p for p in (place(metadata),) if p] + [day.isoformat()]
    return f"{head} ({', '.join(where)})"


def _located(doc_id: str, day: dt.date, metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {"doc_id": doc_id, "title": _text(metadata, "title"), "section": _text(metadata, "section"),
            "page": metadata_int(metadata, "page"), "last_page": metadata_int(metadata, "last_page"),
            "slide": metadata_int(metadata, "slide"), "day": day.isoformat(),
            "citation": citation(doc_id, day, metadata)}


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    """Without the keys that say nothing (None), so a model reads only what there is."""
    return {key: value for key, value in entry.items() if value is not None}


def hit(found: SearchHit) -> dict[str, Any]:
    """One search hit: rank, where it is, its scores, its text, its neighbours (with a window)."""
    entry = {"rank": found.rank, **_located(found.doc_id, found.ingest_date, found.metadata),
             "chunk_id": found.chunk_id, "seq": found.seq, "score": round(found.score, 6),
             "similarity": None if found.similarity is None else round(found.similarity, 6),
             "text_score": None if found.text_score is None else round(found.text_score, 6),
             "document_score": None if found.document_score is None else round(found.document_score, 6),
             "text": found.text, "metadata": found.metadata,
             "context": None if found.context is None else [{"seq": n["seq"], "text": n["text"]} for n in found.context]}
    return _compact(entry)


def search_result(query: str, result: SearchResult) -> dict[str, Any]:
    """A search's answer: the hits, best first, and the model, mode and time that produced them."""
    return {"query": query, "mode": result.mode, "model": result.model, "took_ms": result.took_ms,
            "hits": [hit(h) for h in result.hits]}


def chunk(stored: MatchedChunk) -> dict[str, Any]:
    """One chunk of a fetched document: its position, section, page and text."""
    metadata = stored.metadata
    return _compact({"seq": stored.seq, "chunk_id": stored.chunk_id, "section": _text(metadata, "section"),
                     "page": metadata_int(metadata, "page"), "slide": metadata_int(metadata, "slide"),
                     "citation": citation(stored.doc_id, stored.ingest_date, metadata), "text": stored.text})


def document(chunks: Sequence[MatchedChunk], *, more_from: int | None) -> dict[str, Any]:
    """A document version's chunks (all of it, a page of it, or a window): its id, title and day once,
    each chunk in order, and where to continue (``next_first``) when there is more."""
    first = chunks[0]
    return _compact({"doc_id": first.doc_id, "title": _text(first.metadata, "title"),
                     "day": first.ingest_date.isoformat(), "chunks": [chunk(c) for c in chunks],
                     "next_first": more_from})
