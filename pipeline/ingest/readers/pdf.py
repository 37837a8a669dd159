"""PDF files through PDFium (pypdfium2): text page by page, sections from the document outline
(bookmarks: heading titles, their level and the page they start on), the title from the document
information or the outline. A PDF without a text layer (a scan) has nothing to index."""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.structure import Builder, Parsed, clean_line_text, heading_text

Outline = list[tuple[int, str, int]]  # (level from 1, title, page index)


def _open(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise UnreadableDocument(
                "is password-protected (an encrypted PDF)",
                "land it without the password, e.g. `qpdf --decrypt --password=… in.pdf out.pdf`") from exc
        raise UnreadableDocument(f"is not a readable PDF ({exc})",
                                 "check that the file is complete (re-export or re-download it)") from exc


def _outline(document: pdfium.PdfDocument) -> Outline:
    entries = []
    for item in document.get_toc():
        destination = item.get_dest()
        page = destination.get_index() if destination is not None else None
        title = heading_text(item.get_title() or "")
        if page is not None and title:
            entries.append((item.level + 1, title, page))
    return entries


def _heading_pattern(title: str) -> re.Pattern[str]:
    """The title as it appears in the page text: same words, any whitespace between them."""
    return re.compile(r"\s+".join(re.escape(word) for word in title.split()), re.I)


def _page_texts(document: pdfium.PdfDocument) -> list[str]:
    texts = []
    for index in range(len(document)):
        page = document[index]
        try:
            texts.append(clean_line_text(page.get_textpage().get_text_range()))
        finally:
            page.close()
    return texts


_DIGITS = re.compile(r"\d+")


def _without_running_lines(pages: list[str]) -> list[str]:
    """Page texts without their running headers and footers: a first or last line that recurs (numbers
    aside) at the edge of many pages, such as "Chapter 3 · Indexes 41" or a bare page number."""
    if len(pages) < 4:
        return pages
    edges: dict[str, int] = {}
    for text in pages:
        lines = [line for line in text.split("\n") if line.strip()]
        for line in {lines[0], lines[-1]} if lines else set():
            key = _DIGITS.sub("#", line.strip())
            edges[key] = edges.get(key, 0) + 1
    running = {key for key, count in edges.items() if count >= max(3, len(pages) // 4)}
    cleaned = []
    for text in pages:
        lines = text.split("\n")
        while lines and (not lines[0].strip() or _DIGITS.sub("#", lines[0].strip()) in running):
            lines.pop(0)
        while lines and (not lines[-1].strip() or _DIGITS.sub("#", lines[-1].strip()) in running):
            lines.pop()
        cleaned.append("\n".join(lines))
    return cleaned


def read_pdf(path: Path) -> Parsed:
    document = _open(path)
    try:
        outline = _outline(document)
        builder = Builder()
        texts = _without_running_lines(_page_texts(document))
        pages = len(texts)
        for index, text in enumerate(texts):
            builder.page(index + 1)
            position = 0
            # Each outline entry starting on this page splits the page's text where its title is found.
            for level, heading, _ in (entry for entry in outline if entry[2] == index):
                found = _heading_pattern(heading).search(text, position)
                if found is None:  # title not in the text layer (drawn as an image): section from here
                    builder.block(text[position:])
                    position = len(text)
                    builder.heading(level, heading)
                    continue
                builder.block(text[position:found.start()])
                builder.heading(level, found.group(0))
                position = found.end()
            builder.block(text[position:])
        info = document.get_metadata_dict()
    finally:
        document.close()
    parsed = builder.build(None)
    if not parsed.text.strip():
        raise UnreadableDocument("is a scanned PDF: no text to extract (OCR is not enabled)",
                                 "land a PDF with a text layer, e.g. after `ocrmypdf in.pdf out.pdf`")
    # The information dictionary names the document when its producer filled it in (browsers, Word);
    # TeX and many tools leave it empty, and the first line of the first page is the title page's.
    title: str | None = ((info.get("Title") or "").strip() or _first_line(texts[0] if texts else "")
                         or (outline[0][1] if outline else None))
    metadata = {"pages": pages, **{key.lower(): value.strip() for key, value in info.items()
                                   if key in ("Author", "Subject") and value and value.strip()}}
    return Parsed(parsed.text, title, parsed.sections, metadata)


def _first_line(text: str) -> str | None:
    """The first line with a word of three letters or more (not a page number or a roman numeral)."""
    return next((line.strip()[:200] for line in text.splitlines() if re.search(r"[^\W\d_]{3}", line)), None)
