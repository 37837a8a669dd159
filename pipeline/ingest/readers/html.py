"""HTML pages: the main content as trafilatura extracts it (navigation, headers, footers, sidebars,
scripts and styles dropped), walked in order so headings become the section structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trafilatura
from trafilatura.settings import use_config

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.structure import Builder, Parsed, heading_text
from pipeline.ingest.readers.text import decode_text

# Short pages (an FAQ entry, a release note) are documents too: trafilatura's defaults drop anything
# under 250 characters as "no main content".
_CONFIG = use_config()
_CONFIG.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
_CONFIG.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
_CONFIG.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")  # the parse worker enforces the time limit
_BLOCKS = {"p", "code", "quote"}


def _text(element: Any) -> str:
    return "".join(element.itertext())


def _link_share(element: Any, text: str) -> float:
    """How much of a block's text is link text (``ref`` elements): ~1 for an index or a table of
    contents, ~0.1 for prose with cross-references."""
    linked = sum(len(" ".join(_text(ref).split())) for ref in element.iter("ref"))
    visible = len(" ".join(text.split()))
    return linked / visible if visible else 0.0


def _walk(element: Any, builder: Builder) -> None:
    for child in element:
        tag = child.tag
        if tag == "head":
            rend = child.get("rend") or "h2"
            builder.heading(int(rend[1]) if rend[1:].isdigit() else 2, _text(child))
        elif tag == "table":
            rows = [" | ".join(" ".join(_text(cell).split()) for cell in row) for row in child.iter("row")]
            text = "\n".join(row for row in rows if row.strip(" |"))
            builder.block(text, _link_share(child, text))
        elif tag == "list":
            text = "\n".join(f"- {' '.join(_text(item).split())}" for item in child.iter("item"))
            builder.block(text, _link_share(child, text))
        elif tag in _BLOCKS:
            text = _text(child)
            builder.block(text, _link_share(child, text))
        else:
            _walk(child, builder)


def read_html(path: Path) -> Parsed:
    html = decode_text(path.read_bytes())
    extracted = trafilatura.bare_extraction(html, include_tables=True, include_formatting=False, include_links=True,
                                            include_comments=False, favor_recall=True, with_metadata=True,
                                            config=_CONFIG)
    if isinstance(extracted, dict):  # only with as_dict=True; never here
        raise TypeError("trafilatura returned a dict")
    builder = Builder()
    if extracted is not None and extracted.body is not None:
        _walk(extracted.body, builder)
    parsed = builder.build(None)
    if not parsed.text.strip():
        raise UnreadableDocument("has no readable text (no main content in the page)",
                                 "check that it is a web page with text, not a frame or a redirect")
    page_title = heading_text(extracted.title) if extracted is not None and extracted.title else None
    author = getattr(extracted, "author", None)
    metadata = {"author": author} if author else {}
    # The page's own heading names it better than a <title> that carries the site's name as well.
    return Parsed(parsed.text, builder.first_heading or page_title, parsed.sections, metadata, parsed.links)
