"""The data that flows between stages for one ingest day, and the identity of the model that embeds it
(plain dataclasses: picklable, framework-free, imported by every subsystem)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.lexical.bm25 import LexicalEntry

# int8 vectors are not the fp32 ones: the onnx-int8 backend records its vectors under this revision suffix.
INT8_REVISION_SUFFIX = "+int8"
# Chunks embedded with their contextual header (title > section path; pipeline/ingest/context.py) are
# not the chunks embedded bare: recorded under this suffix, bumped whenever the header recipe changes,
# so a new recipe is a new revision that goes through a shadow build and never mixes with old vectors.
CONTEXT_REVISION_SUFFIX = "+ctx1"


def backend_of_revision(revision: str) -> str:
    """The backend that makes a stored revision's vectors (onnx makes torch's, so it is never needed)."""
    return "onnx-int8" if revision.endswith(INT8_REVISION_SUFFIX) else "torch"


def is_contextual_revision(revision: str) -> bool:
    """Whether a stored revision's chunks were embedded with the current contextual-header recipe."""
    return revision.removesuffix(INT8_REVISION_SUFFIX).endswith(CONTEXT_REVISION_SUFFIX)


def recorded_revision(files_revision: str, backend: str, contextual: bool) -> str:
    """The revision vectors are stored under: the model files' hash, the header recipe, the backend."""
    return (files_revision + (CONTEXT_REVISION_SUFFIX if contextual else "")
            + (INT8_REVISION_SUFFIX if backend == "onnx-int8" else ""))


@dataclass(frozen=True)
class ModelInfo:
    """What a day's vectors were made with: recorded once per (name, revision) in ``embedding_models``."""
    name: str
    revision: str
    dim: int
    max_seq_length: int
    normalized: bool
    device: str


@dataclass(frozen=True)
class Section:
    """Where a stretch of a document's text sits, from ``start`` (a character offset into the text) up
    to the next section's start: its heading path (outermost first), and its page or slide."""
    start: int
    path: tuple[str, ...] = ()
    page: int | None = None
    slide: int | None = None
    heading: bool = False  # the stretch opens with a heading: the best place to start a chunk

    @property
    def label(self) -> str:
        return " > ".join(self.path)


@dataclass(frozen=True)
class LinkBlock:
    """A block of a document (``start``..``end``, character offsets) and the share of its characters
    that are link text: an index, a table of contents or a navigation list is nearly all links."""
    start: int
    end: int
    share: float


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str  # path relative to its day folder: the same document across days
    source_uri: str  # path relative to the landing root: this version of it
    ingest_date: dt.date
    text: str
    content_sha256: str
    bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)  # title, format, front matter, pages…
    sections: tuple[Section, ...] = ()  # ordered by start; empty: one untitled stretch
    stamp: str = ""  # the file's listing stamp when it was read (see landing.LandingFile)
    links: tuple[LinkBlock, ...] = ()  # blocks holding link text, ordered by start
    readers: tuple[str, ...] = ("*",)  # who may read it (pipeline/ingest/permissions.py): sorted principals


@dataclass(frozen=True)
class KeptDocument:
    """A document of a changed day whose file has the same listing stamp as at its last load: not read
    again; its stored chunks and ``documents`` row stay as they are."""
    doc_id: str
    content_sha256: str
    # Set when the stamp had changed but the file's bytes hash to the stored ones (copied or synced
    # again): the new stamp; the file was opened to hash it, not parsed.
    stamp: str = ""
    # Who may read it, recomputed without parsing it (its stored metadata, the sidecar, the default):
    # written on its stored row with the day; None leaves the stored readers as they are.
    readers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A file (or a document of it) that could not be ingested: ``error`` says what, ``detail`` the fix."""
    source_uri: str
    ingest_date: dt.date
    stage: str
    error: str
    detail: str = ""


@dataclass(frozen=True)
class ChunkRecord:
    chunk_id: str
    doc_id: str
    seq: int
    text: str
    token_count: int
    content_sha256: str  # of what the model embeds: the contextual header and the text
    metadata: dict[str, Any]
    context: str = ""  # the contextual header embedded before the text ("" when embedded bare)
    lexical: LexicalEntry | None = None  # BM25 terms and weights; None: not found by text search
    prior: float = 1.0  # search weight: below 1 for link and term lists (pipeline/lexical/listing.py)


@dataclass(frozen=True)
class SourceState:
    """What a day's stored chunks were built from: ``signature`` (file names, sizes, inodes, change times;
    cheap to recompute) and ``content_fingerprint`` (file contents and failures; needs every file read)."""
    signature: str = ""
    content_fingerprint: str = ""


@dataclass(frozen=True)
class CollectionChanges:
    """What a collection's snapshot found against the collection as stored before its day: documents
    ``added``, ``changed`` (read again, new content) and ``deleted`` (no longer listed), and how many
    ``unchanged`` (stored versions kept as they are, most never opened); ``restamped``: of those, files
    whose bytes were hashed again (touched or copied) and found the same."""
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    restamped: int = 0


@dataclass(frozen=True)
class DayDocuments:
    day: dt.date
    documents: list[SourceDocument]
    dead_letters: list[DeadLetter]
    files_seen: int
    seconds: float
    source: SourceState = SourceState()
    kept: tuple[KeptDocument, ...] = ()  # unchanged files of a changed day: not read, their chunks kept
    deleted: tuple[str, ...] = ()  # document ids the day's manifest deletes (tombstones written with the day)


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
    kept: tuple[KeptDocument, ...] = ()
    contextual: bool = True  # chunks carry contextual headers, to be embedded with them
    model: ModelInfo | None = None  # the model the day is built for (an unchanged day's stored vectors are its)
    deleted: tuple[str, ...] = ()
    changes: CollectionChanges | None = None  # a collection's snapshot: what it changed (None: a day folder)


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
    kept: tuple[KeptDocument, ...] = ()
    deleted: tuple[str, ...] = ()
    changes: CollectionChanges | None = None


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
    carried_chunks: int = 0  # rows of the old partition kept as they were: other days of a block, other models
    kept_chunks: int = 0  # this day's rows of documents whose files did not change (included in ``chunks``)
    partition: str = ""  # the partition that holds the day: its own, or the sealed block it was merged into
    deleted: int = 0  # documents the day's tombstones hid from search (its manifest's, or a collection's gone files)
    deleted_unknown: tuple[str, ...] = ()  # ids the manifest names that no stored version has (a warning)

    @property
    def rows_per_second(self) -> float:
        return self.chunks / self.copy_seconds if self.copy_seconds > 0 else 0.0
