"""Ready-made vectors and days of them, for tests and benchmarks of the store that need no files and no
model run: what they measure (loading, indexes, layout, search SQL) depends on the vectors' shape, not on
what a model would make of real text."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.lexical.bm25 import chunk_term_counts, entries
from pipeline.records import ChunkRecord, DayEmbeddings, SourceDocument

DIM = 384  # all-MiniLM-L6-v2, the bundled model


def clustered(n: int, seed: int, clusters: int = 200, latent: int = 24) -> np.ndarray:
    """A Gaussian mixture in a 24-d latent space, projected to 384-d: like real sentence embeddings,
    the data has a low intrinsic dimension, so nearest neighbours are well separated (isotropic
    384-d noise would make every neighbour a near tie and recall meaningless)."""
    projection = np.random.default_rng(0).standard_normal((latent, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1).standard_normal((clusters, latent)).astype(np.float32) * 2.0
    points = centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, latent)).astype(np.float32)
    data = points @ projection + 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
    normalized: np.ndarray = data / np.linalg.norm(data, axis=1, keepdims=True)
    return normalized


def synthetic_day(day: dt.date, vectors: np.ndarray, model_name: str, model_revision: str,
                  metadata: Callable[[int], dict[str, Any]] | None = None, texts: list[str] | None = None,
                  documents: int = 100, doc_prefix: str = "synthetic") -> DayEmbeddings:
    """A day of ready-made vectors (no files, no model run): chunk ``i`` belongs to
    ``{doc_prefix}-{i % documents}.md`` and has text ``texts[i]`` or a placeholder."""
    count = min(documents, len(vectors))
    doc_ids = [f"{doc_prefix}-{d}.md" for d in range(count)]
    chunk_texts = [texts[i] if texts else f"synthetic chunk {i}" for i in range(len(vectors))]
    lexical = entries([chunk_term_counts(text) for text in chunk_texts])
    chunks = [ChunkRecord(chunk_id=f"{day:%Y%m%d}-{i}", doc_id=doc_ids[i % count], seq=i // count,
                          text=chunk_texts[i], token_count=4, content_sha256=f"{day:%Y%m%d}{i:056x}",
                          metadata=metadata(i) if metadata else {}, lexical=lexical[i])
              for i in range(len(vectors))]
    docs = [SourceDocument(doc_id=doc_id, source_uri=f"{day}/{doc_id}", ingest_date=day, text="",
                           content_sha256=doc_id, bytes=0) for doc_id in doc_ids]
    return DayEmbeddings(day=day, documents=docs, chunks=chunks, chunk_counts=dict(Counter(c.doc_id for c in chunks)),
                         vectors=vectors,
                         model_name=model_name, model_revision=model_revision, dim=int(vectors.shape[1]),
                         embedded=len(chunks), reused=0, dead_letters=[], seconds=0.0)
