"""Contextual headers: each chunk is embedded as ``Title > Section > Subsection`` followed by its text,
so a chunk deep in a page still says what the page and section are about (a question phrased in other
words than the chunk finds it through its header). The header is stored apart (``chunks.context``) so
results show clean text, and it never exceeds the room the chunker leaves for it.

The recipe (``HeaderRecipe``: which headings, how much room) is part of the embedding revision
(``records.CONTEXT_REVISION_SUFFIX``): change ``RECIPE`` or anything here that changes a header, and bump
that suffix. Other recipes exist for measurement (benchmarks/header_recipes.py), never for a store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pipeline.lexical.bm25 import section_below_title

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SEPARATOR = "\n\n"
Sections = Literal["path", "last", "none"]


@dataclass(frozen=True)
class HeaderRecipe:
    """How a chunk's header is made: the page title, then its section headings (``path``: every heading
    from the page's top down to the chunk's; ``last``: only the chunk's own heading; ``none``: the title
    alone), within ``tokens`` word pieces reserved in every chunk's budget (more when the chunk is short)."""

    sections: Sections = "path"
    tokens: int = 32

    @property
    def name(self) -> str:
        return f"title{'' if self.sections == 'none' else ' > ' + self.sections}, {self.tokens} tokens"


RECIPE = HeaderRecipe()  # what stores embed: measured against the others in benchmarks/RESULTS.md
HEADER_TOKENS = RECIPE.tokens  # word pieces reserved for the header in every chunk's budget


def header(title: str | None, section: str | None, recipe: HeaderRecipe = RECIPE) -> str:
    """``Title > Section path`` (or the recipe's part of it), without repeating the title when the path
    starts with it."""
    headings = section_below_title(title, section)
    kept = headings if recipe.sections == "path" else headings[-1:] if recipe.sections == "last" else ()
    return " > ".join(part for part in (title, *kept) if part)


def fit(text: str, tokenizer: Tokenizer, room: int) -> str:
    """``text`` cut to at most ``room`` word pieces (its innermost headings are the ones dropped)."""
    if room <= 0 or not text:
        return ""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return text if len(encoding.ids) <= room else text[:encoding.offsets[room - 1][1]].rstrip(" >")


def embedded_text(context: str, text: str) -> str:
    """What the model embeds for a chunk: its header, a blank line, its text."""
    return f"{context}{SEPARATOR}{text}" if context else text
