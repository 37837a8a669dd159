"""What every reader returns: a document's text with its structure (title, heading path per stretch,
page or slide), assembled block by block so that offsets and sections always agree."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import LinkBlock, Section

_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
# Permalink anchors that documentation generators append to headings (Sphinx, MkDocs, GitHub).
_PERMALINK = re.compile(r"\s*[¶#§🔗]\s*$")


@dataclass(frozen=True)
class Parsed:
    text: str
    title: str | None
    sections: tuple[Section, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    links: tuple[LinkBlock, ...] = ()  # blocks with link text, where the format has links


def clean_line_text(text: str, *, preformatted: bool = False) -> str:
    """Text of one block: Windows line ends and runs of spaces flattened, soft hyphens and form feeds
    dropped, blank-line runs shortened, ends trimmed. ``preformatted`` (a code block): each line's
    spaces and indent kept as written, only line ends, trailing spaces and blank lines around it cleaned."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00ad", "").replace("\x02", "")
    lines = (line.rstrip() if preformatted else _SPACES.sub(" ", line).rstrip() for line in text.split("\n"))
    text = _BLANK_RUNS.sub("\n\n", "\n".join(lines))
    return text.strip("\n") if preformatted else text.strip()


def heading_text(text: str) -> str:
    return _PERMALINK.sub("", " ".join(text.split()))


class Builder:
    """Appends blocks (paragraphs, tables, headings) separated by blank lines, and opens a section
    wherever the heading path, page or slide changes."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._sections: list[Section] = []
        self._path: list[tuple[int, str]] = []  # (level, heading)
        self._page: int | None = None
        self._slide: int | None = None
        self._pending_heading = False
        self._links: list[LinkBlock] = []
        self.first_heading: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._path)

    def page(self, number: int) -> None:
        self._page = number

    def slide(self, number: int) -> None:
        self._slide = number
        self._path = []

    def heading(self, level: int, text: str) -> None:
        """A heading of ``level`` (1 outermost): it closes deeper and equal headings, and its own text
        opens the new section."""
        text = heading_text(text)
        if not text:
            return
        self._path = [(lvl, t) for lvl, t in self._path if lvl < level] + [(level, text)]
        self.first_heading = self.first_heading or text
        self._pending_heading = True
        self.block(text)

    def block(self, text: str, link_share: float = 0.0, *, preformatted: bool = False) -> None:
        """A block of text; ``link_share``: the fraction of its characters that are link text;
        ``preformatted``: a code block, whose spaces and indents are kept (``clean_line_text``)."""
        text = clean_line_text(text, preformatted=preformatted)
        if not text:
            return
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        if link_share > 0:
            self._links.append(LinkBlock(self._length, self._length + len(text), round(min(link_share, 1.0), 3)))
        current = Section(self._length, self.path, self._page, self._slide, heading=self._pending_heading)
        last = self._sections[-1] if self._sections else None
        if (last is None or self._pending_heading or (last.path, last.page, last.slide)
                != (current.path, current.page, current.slide)):
            self._sections.append(current)
        self._pending_heading = False
        self._parts.append(text)
        self._length += len(text)

    def build(self, title: str | None, metadata: dict[str, Any] | None = None) -> Parsed:
        return Parsed("".join(self._parts), title, tuple(self._sections), dict(metadata or {}), tuple(self._links))
