"""PDF files through PDFium (pypdfium2): text page by page, sections from the document outline
(bookmarks: heading titles, their level and the page they start on), the title from the document
information or the outline. Pages without a text layer (a scan, or the scanned pages of a mixed PDF)
are rendered and OCR'd (``readers.ocr``) when OCR is on and installed; pages with text never are."""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers import ocr
from pipeline.ingest.readers.ocr import OcrOptions
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
_WORD = re.compile(r"[^\W\d_]{3}")  # a run of three letters: a page without one has no text layer to speak of


def _has_image(document: pdfium.PdfDocument, index: int) -> bool:
    page = document[index]
    try:
        return next(iter(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)), None) is not None
    finally:
        page.close()


def _recognize_textless(document: pdfium.PdfDocument, texts: list[str], options: OcrOptions,
                        recognizer: ocr.Recognizer) -> list[int]:
    """OCR the scanned pages (an image, and no word in the text layer: at most a stamped page number),
    in place in ``texts``; pages with text, and blank or drawn pages, never are. Returns the page numbers
    (from 1) left unread: all of them when OCR is off or not installed, those past ``max_pages`` in a
    PDF that also has text (a whole scan past it is a dead letter)."""
    textless = [index for index, text in enumerate(texts) if not _WORD.search(text) and _has_image(document, index)]
    if not textless:
        return []
    mixed = any(_WORD.search(text) for text in texts)
    if mixed and (not options.enabled or ocr.missing(options) is not None):
        return [index + 1 for index in textless]  # its text pages are still worth indexing
    ocr.require(options, "is a scanned PDF: no text to extract")
    if not mixed:
        ocr.check_page_count(len(textless), options)
    unread = [index + 1 for index in textless[options.max_pages:]]
    for index in textless[:options.max_pages]:
        page = document[index]
        try:
            width, height = page.get_size()
            bitmap = page.render(scale=ocr.render_scale(width, height, options.dpi), grayscale=True)
            texts[index] = clean_line_text(recognizer.text(bitmap.to_pil()))
        finally:
            page.close()
    return unread


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


def read_pdf(path: Path, options: OcrOptions | None = None) -> Parsed:
    document = _open(path)
    recognizer = ocr.Recognizer(options or OcrOptions())
    try:
        outline = _outline(document)
        builder = Builder()
        texts = _page_texts(document)
        unread = _recognize_textless(document, texts, recognizer.options, recognizer)
        texts = _without_running_lines(texts)
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
        raise UnreadableDocument(
            f"is a scanned PDF: OCR found no text on its {pages:,} page{'s' if pages > 1 else ''}" if recognizer.pages
            else "is a PDF without text: no text layer and no scanned page (blank, or text drawn as shapes)",
            f"check the scan (resolution, orientation; ocr_languages is {recognizer.options.languages!r}), or land "
            "a PDF with a text layer, e.g. after `ocrmypdf in.pdf out.pdf`")
    # The information dictionary names the document when its producer filled it in (browsers, Word);
    # TeX and many tools leave it empty, and the first line of the first page is the title page's.
    title: str | None = ((info.get("Title") or "").strip() or first_line(texts[0] if texts else "")
                         or (outline[0][1] if outline else None))
    metadata = {"pages": pages, **{key.lower(): value.strip() for key, value in info.items()
                                   if key in ("Author", "Subject") and value and value.strip()},
                **recognizer.metadata(), **({"pages_without_text": unread} if unread else {})}
    return Parsed(parsed.text, title, parsed.sections, metadata)


def first_line(text: str) -> str | None:
    """The first line with a word of three letters or more (not a page number or a roman numeral)."""
    return next((line.strip()[:200] for line in text.splitlines() if re.search(r"[^\W\d_]{3}", line)), None)
