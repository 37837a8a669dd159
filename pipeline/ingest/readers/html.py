"""HTML pages: the main content as trafilatura extracts it (navigation, headers, footers, sidebars,
scripts and styles dropped), walked in order so headings become the section structure.

Whitespace is the page's layout, not its text: a paragraph's source line breaks ("indexing common\n
values") and runs of spaces become single spaces, and only its ``<br>`` stay line breaks. Code blocks
(``<pre>``) keep every line and indent as written; table rows and list items stay one per line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
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
_BREAK = "\x00"  # stands for a <br> (trafilatura's <lb/>) while a paragraph's whitespace is normalised


def _text(element: Any) -> str:
    return "".join(element.itertext())


def _pieces(element: Any, into: list[str]) -> None:
    if element.tag == "lb":
        into.append(_BREAK)
    elif element.text:
        into.append(element.text)
    for child in element:
        _pieces(child, into)
        if child.tail:
            into.append(child.tail)


def _prose(element: Any) -> str:
    """A paragraph's text with its whitespace normalised: one space between words, a line break only
    where the page had a ``<br>``."""
    pieces: list[str] = []
    _pieces(element, pieces)
    lines = (" ".join(line.split()) for line in "".join(pieces).split(_BREAK))
    return "\n".join(line for line in lines if line)


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
        elif tag == "code" or (tag == "quote" and child.find(".//code") is not None):
            text = _text(child)  # a code block, or a quote holding one: as written
            builder.block(text, _link_share(child, text), preformatted=True)
        elif tag in ("p", "quote"):
            text = _prose(child)
            builder.block(text, _link_share(child, text))
        else:
            _walk(child, builder)


def _own_heading(html: str) -> tuple[str | None, list[str]]:
    """The page's first ``<h1>`` as written in the source, and the paragraphs after it in its own container
    (a man page's header holds its h1 and the NAME line, "git-stash - Stash the changes in a dirty
    working directory away"; at most two paragraphs, 400 characters). trafilatura drops such a header as
    boilerplate, and with it the page's name and its one-line summary."""
    try:
        tree = lxml.html.fromstring(html.encode("utf-8"))
    except (ValueError, lxml.etree.ParserError):
        return None, []
    first = next(iter(tree.iter("h1")), None)
    if first is None:
        return None, []
    title = " ".join(first.text_content().split()) or None
    lead: list[str] = []
    container = first.getparent()
    after = False
    for element in container.iter() if container is not None else ():
        if element is first:
            after = True
        elif after and element.tag == "p" and len(lead) < 2:
            text = " ".join(element.text_content().split())
            if text and sum(map(len, lead)) + len(text) <= 400:
                lead.append(text)
    return title, lead


def read_html(path: Path) -> Parsed:
    html = decode_text(path.read_bytes())
    own_title, lead = _own_heading(html)
    extracted = trafilatura.bare_extraction(html, include_tables=True, include_formatting=False, include_links=True,
                                            include_comments=False, favor_recall=True, with_metadata=True,
                                            config=_CONFIG)
    if isinstance(extracted, dict):  # only with as_dict=True; never here
        raise TypeError("trafilatura returned a dict")
    builder = Builder()
    body_text = _text(extracted.body) if extracted is not None and extracted.body is not None else ""
    for paragraph in lead:  # only what the extraction dropped with the page's header
        if paragraph not in " ".join(body_text.split()):
            builder.block(paragraph, 0.0)
    if extracted is not None and extracted.body is not None:
        _walk(extracted.body, builder)
    parsed = builder.build(None)
    if not parsed.text.strip():
        raise UnreadableDocument("has no readable text (no main content in the page)",
                                 "check that it is a web page with text, not a frame or a redirect")
    page_title = heading_text(extracted.title) if extracted is not None and extracted.title else None
    author = getattr(extracted, "author", None)
    metadata = {"author": author} if author else {}
    # The page's own <h1> names it better than a <title> that carries the site's name as well, and better
    # than the first heading of the extracted content when the extraction dropped the h1 ("SYNOPSIS").
    title = heading_text(own_title) if own_title else builder.first_heading or page_title
    return Parsed(parsed.text, title or page_title, parsed.sections, metadata, parsed.links)
