"""Token-aware chunking with the model's own tokenizer.

Each document is tokenized once (Rust fast tokenizer, offsets kept). Windows of at most
``max_seq_length - 2`` word pieces (room for [CLS]/[SEP]) are cut at the best break inside the last half
of the window: paragraph > sentence > line > word; never inside a word unless a single "word" is longer
than a window. Consecutive chunks share ``overlap`` tokens. Every chunk is re-tokenized as the model will
see it and split again if it would be truncated, so no chunk ever exceeds the model's limit. A chunk also
holds at most ``max_chars`` characters (16 per token of budget): a "word" longer than the tokenizer's word
limit becomes one [UNK] token, which would otherwise let a single token carry a megabyte of text.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

CHARS_PER_TOKEN_CAP = 16  # real text runs at ~4 characters per word piece
SENTENCE_END = frozenset(".!?;:。！？；…")
HEADING, PARAGRAPH, SENTENCE, LINE, WORD, NONE = 5, 4, 3, 2, 1, 0
_PARAGRAPH_GAP = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class ChunkingConfig:
    max_seq_length: int
    max_tokens: int | None = None  # a tighter cap than the model's, if wanted
    overlap_tokens: int = 32
    special_tokens: int = 2
    reserved_tokens: int = 0  # room left in every chunk for its contextual header (ingest/context.py)

    def __post_init__(self) -> None:
        if self.overlap_tokens < 0:
            raise ConfigError(f"overlap_tokens must be >= 0, got {self.overlap_tokens}")
        if self.budget < 8:
            raise ConfigError(f"chunk budget of {self.budget} tokens is too small; raise max_tokens")
        if self.overlap_tokens >= self.budget // 2:
            raise ConfigError(
                f"overlap_tokens ({self.overlap_tokens}) must be under half the chunk budget ({self.budget})"
            )

    @property
    def budget(self) -> int:
        limit = self.max_seq_length - self.special_tokens - self.reserved_tokens
        return min(limit, self.max_tokens) if self.max_tokens else limit

    @property
    def model_room(self) -> int:
        """Word pieces the model reads of one input (its limit less [CLS]/[SEP]): a chunk and its header."""
        return self.max_seq_length - self.special_tokens

    @property
    def max_chars(self) -> int:
        return self.budget * CHARS_PER_TOKEN_CAP


@dataclass(frozen=True)
class Chunk:
    seq: int
    text: str
    token_count: int
    char_start: int
    char_end: int
    content_sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_sha256", sha256_text(self.text))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(doc_id: str, seq: int, content_sha256: str) -> str:
    """Deterministic: the same document, position and content give the same id on any machine."""
    return hashlib.sha256(f"{doc_id}\x1f{seq}\x1f{content_sha256}".encode()).hexdigest()[:32]


def _break_strength(text: str, offsets: Sequence[tuple[int, int]], i: int) -> int:
    """How good a place is the start of token ``i`` to begin a new chunk."""
    _prev_start, prev_end = offsets[i - 1]
    gap = text[prev_end:offsets[i][0]]
    if not gap:
        return NONE
    if _PARAGRAPH_GAP.search(gap):
        return PARAGRAPH
    if text[prev_end - 1:prev_end] in SENTENCE_END:
        return SENTENCE
    if "\n" in gap:
        return LINE
    return WORD


def _windows(text: str, offsets: Sequence[tuple[int, int]], budget: int, overlap: int,
             headings: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Token windows ``[start, end)``. A window ends at the best break in its last half (paragraph >
    sentence > line > word), or at a heading anywhere in its last three quarters: a chunk then holds
    one section, and the next starts at the heading, without overlap into the section before."""
    n = len(offsets)
    windows: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(start + budget, n)
        best_strength = NONE
        if end < n or any(start < h < end for h in headings):
            best = end
            for cut in range(end - (end == n), start + budget // 4, -1):
                strength = HEADING if cut in headings else (
                    _break_strength(text, offsets, cut) if cut > start + budget // 2 and end < n else NONE)
                if strength > best_strength:
                    best, best_strength = cut, strength
                    if strength == HEADING:
                        break
            end = best
        windows.append((start, end))
        if end >= n:
            break
        next_start = end
        if overlap and best_strength != HEADING:
            next_start = end - overlap
            for j in range(end - overlap, end):
                if _break_strength(text, offsets, j) >= WORD:
                    next_start = j
                    break
        start = max(next_start, start + 1)
    return windows


def heading_tokens(offsets: Sequence[tuple[int, int]], heading_starts: Sequence[int]) -> frozenset[int]:
    """The first token at or after each heading's character offset."""
    token_starts = [start for start, _ in offsets]
    return frozenset(i for i in (bisect.bisect_left(token_starts, at) for at in heading_starts) if 0 < i < len(offsets))


def chunk_texts(documents: Sequence[str], tokenizer: Tokenizer, config: ChunkingConfig,
                headings: Sequence[Sequence[int]] | None = None) -> list[list[Chunk]]:
    """Chunk many documents in one tokenizer call (the Rust tokenizer runs them in parallel).
    ``headings``: per document, the character offsets where a heading begins (preferred cuts)."""
    encodings = tokenizer.encode_batch(list(documents), add_special_tokens=False)
    planned: list[list[tuple[int, int]]] = []
    for index, (text, encoding) in enumerate(zip(documents, encodings, strict=True)):
        offsets = encoding.offsets
        cuts = heading_tokens(offsets, headings[index]) if headings else frozenset()
        spans = []
        for start, end in _windows(text, offsets, config.budget, config.overlap_tokens, cuts):
            spans.append((offsets[start][0], offsets[end - 1][1]))
        planned.append(spans)
    return [_verified(text, spans, tokenizer, config) for text, spans in zip(documents, planned, strict=True)]


def _verified(text: str, spans: list[tuple[int, int]], tokenizer: Tokenizer,
              config: ChunkingConfig) -> list[Chunk]:
    """Re-tokenize each chunk as the model will see it; split any that would be truncated."""
    limit, max_chars = config.budget, config.max_chars
    pending = list(spans)
    chunks: list[Chunk] = []
    while pending:
        texts = [text[a:b] for a, b in pending]
        counts = [len(e) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
        retry: list[tuple[int, int]] = []
        for (a, b), count in zip(pending, counts, strict=True):
            if (count <= limit and b - a <= max_chars) or b - a <= 1:
                chunks.append(Chunk(seq=0, text=text[a:b], token_count=count, char_start=a, char_end=b))
            else:  # rare: tokenization at the cut differed from the whole-document one, or [UNK] giants
                middle = text.rfind(" ", a + 1, a + (b - a) // 2 + 1)
                middle = middle if middle > a else a + (b - a) // 2
                retry.extend([(a, middle), (middle, b)])
        pending = retry
    chunks.sort(key=lambda chunk: (chunk.char_start, chunk.char_end))
    return [Chunk(seq=i, text=c.text.strip() or c.text, token_count=c.token_count, char_start=c.char_start,
                  char_end=c.char_end) for i, c in enumerate(chunks)]
