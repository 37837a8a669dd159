"""Contextual headers: each chunk is embedded as ``Title > Section > Subsection`` followed by its text,
so a chunk deep in a page still says what the page and section are about (a question phrased in other
words than the chunk finds it through its header). The header is stored apart (``chunks.context``) so
results show clean text, and it never exceeds the room the chunker leaves for it.

The recipe is part of the embedding revision (``records.CONTEXT_REVISION_SUFFIX``): change anything
here that changes a header, and bump that suffix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lexical.bm25 import section_below_title

if TYPE_CHECKING:
    from tokenizers import Tokenizer

HEADER_TOKENS = 32  # word pieces reserved for the header in every chunk's budget
SEPARATOR = "\n\n"


def header(title: str | None, section: str | None) -> str:
    """``Title > Section path``, without repeating the title when the path starts with it."""
    return " > ".join(part for part in (title, *section_below_title(title, section)) if part)


def fit(text: str, tokenizer: Tokenizer, room: int) -> str:
    """``text`` cut to at most ``room`` word pieces (its innermost headings are the ones dropped)."""
    if room <= 0 or not text:
        return ""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return text if len(encoding.ids) <= room else text[:encoding.offsets[room - 1][1]].rstrip(" >")


def embedded_text(context: str, text: str) -> str:
    """What the model embeds for a chunk: its header, a blank line, its text."""
    return f"{context}{SEPARATOR}{text}" if context else text
