"""One reader per format family, each a thin adapter over a maintained library, chosen by the file's
extension. ``parse`` turns a local file into text with its structure, or raises
``UnreadableDocument`` with the reason and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.structure import Parsed

Reader = Callable[[Path], Parsed]


def _text(path: Path) -> Parsed:
    from pipeline.ingest.readers.text import read_plain_text

    return read_plain_text(path)


def _markdown(path: Path) -> Parsed:
    from pipeline.ingest.readers.text import read_markdown

    return read_markdown(path)


def _html(path: Path) -> Parsed:
    from pipeline.ingest.readers.html import read_html

    return read_html(path)


def _pdf(path: Path) -> Parsed:
    from pipeline.ingest.readers.pdf import read_pdf

    return read_pdf(path)


def _docx(path: Path) -> Parsed:
    from pipeline.ingest.readers.office import read_docx

    return read_docx(path)


def _pptx(path: Path) -> Parsed:
    from pipeline.ingest.readers.office import read_pptx

    return read_pptx(path)


def _xlsx(path: Path) -> Parsed:
    from pipeline.ingest.readers.office import read_xlsx

    return read_xlsx(path)


def _epub(path: Path) -> Parsed:
    from pipeline.ingest.readers.epub import read_epub

    return read_epub(path)


# Imported on first use: a day of Markdown never loads PDFium or lxml.
READERS: dict[str, Reader] = {
    ".txt": _text, ".text": _text,
    ".md": _markdown, ".markdown": _markdown,
    ".html": _html, ".htm": _html, ".xhtml": _html,
    ".pdf": _pdf,
    ".docx": _docx,
    ".pptx": _pptx,
    ".xlsx": _xlsx, ".xlsm": _xlsx,
    ".epub": _epub,
}
# Formats cheap and safe to read in the calling process (pure Python on bounded text); every other
# format is parsed in a worker process under a time and memory limit.
IN_PROCESS = frozenset({".txt", ".text", ".md", ".markdown"})


def supported() -> str:
    return ", ".join(sorted(READERS))


def reader_for(name: str) -> Reader:
    suffix = Path(name).suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        what = suffix or "files without an extension"
        raise UnreadableDocument(f"has no reader: no reader for {what}",
                                 f"docvec reads: {supported()}. Convert it to one of those, or remove it")
    return reader


def parse(path: Path) -> Parsed:
    return reader_for(path.name)(path)
