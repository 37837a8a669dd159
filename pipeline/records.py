"""The data that flows between stages for one ingest day (plain dataclasses: picklable, framework-free)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.sources import DeadLetter, SourceDocument


@dataclass(frozen=True)
class ChunkRecord:
    chunk_id: str
    doc_id: str
    seq: int
    text: str
    token_count: int
    content_sha256: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SourceState:
    """What a day's stored chunks were built from: ``signature`` (file names, sizes, inodes, change times;
    cheap to recompute) and ``content_fingerprint`` (file contents and failures; needs every file read)."""
    signature: str = ""
    content_fingerprint: str = ""


@dataclass(frozen=True)
class DayDocuments:
    day: dt.date
    documents: list[SourceDocument]
    dead_letters: list[DeadLetter]
    files_seen: int
    seconds: float
    source: SourceState = SourceState()
    files_read: bool = True  # False: the signature matched the stored day's, so no file was opened


@dataclass(frozen=True)
class DayChunks:
    day: dt.date
    documents: list[SourceDocument]
    chunks: list[ChunkRecord]
    chunk_counts: dict[str, int]  # doc_id -> chunks
    dead_letters: list[DeadLetter]
    seconds: float
    fingerprint: str = ""
    unchanged: bool = False  # same input as the stored day: nothing to chunk, embed or rewrite
    source: SourceState = SourceState()


@dataclass(frozen=True)
class DayEmbeddings:
    day: dt.date
    documents: list[SourceDocument]
    chunks: list[ChunkRecord]
    chunk_counts: dict[str, int]
    vectors: np.ndarray  # float32, one row per chunk, same order
    model_name: str
    model_revision: str
    dim: int
    embedded: int
    reused: int
    dead_letters: list[DeadLetter]
    seconds: float
    device: str = "cpu"
    fingerprint: str = ""
    unchanged: bool = False
    source: SourceState = SourceState()


@dataclass(frozen=True)
class DayLoad:
    day: dt.date
    documents: int
    chunks: int
    replaced_chunks: int
    dead_letters: int
    copy_seconds: float
    seconds: float
    table_bytes: int
    unchanged: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.chunks / self.copy_seconds if self.copy_seconds > 0 else 0.0
