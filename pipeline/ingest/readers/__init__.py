"""One reader per format family, each a thin adapter over a maintained library, chosen by the file's
extension. ``parse`` turns a local file into text with its structure, or raises
``UnreadableDocument`` with the reason and the fix."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.ocr import OcrOptions
from pipeline.ingest.readers.structure import Parsed

Reader = Callable[[Path], Parsed]
OcrReader = Callable[[Path, OcrOptions], Parsed]  # a format whose pages may need OCR


# extension -> (module, function), imported on first use: a day of Markdown never loads PDFium or lxml.
_READERS: dict[str, tuple[str, str]] = {
    ".txt": ("text", "read_plain_text"), ".text": ("text", "read_plain_text"),
    ".md": ("text", "read_markdown"), ".markdown": ("text", "read_markdown"),
    ".html": ("html", "read_html"), ".htm": ("html", "read_html"), ".xhtml": ("html", "read_html"),
    ".pdf": ("pdf", "read_pdf"),
    ".docx": ("office", "read_docx"), ".pptx": ("office", "read_pptx"),
    ".xlsx": ("office", "read_xlsx"), ".xlsm": ("office", "read_xlsx"),
    ".epub": ("epub", "read_epub"),
    ".png": ("images", "read_image"), ".jpg": ("images", "read_image"), ".jpeg": ("images", "read_image"),
    ".tif": ("images", "read_image"), ".tiff": ("images", "read_image"),
}
_OCR_MODULES = frozenset({"pdf", "images"})
# Formats cheap and safe to read in the calling process (pure Python on bounded text); every other
# format is parsed in a worker process under a time and memory limit.
IN_PROCESS = frozenset({".txt", ".text", ".md", ".markdown"})


def supported() -> str:
    return ", ".join(sorted(_READERS))


def require_reader(name: str) -> tuple[str, str]:
    """Where the reader of a file of this name lives; ``UnreadableDocument`` when there is none."""
    suffix = Path(name).suffix.lower()
    where = _READERS.get(suffix)
    if where is None:
        what = suffix or "files without an extension"
        raise UnreadableDocument(f"has no reader: no reader for {what}",
                                 f"docvec reads: {supported()}. Convert it to one of those, or remove it")
    return where


def reader_for(name: str) -> Reader:
    module, function = require_reader(name)
    reader: Reader = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return reader


def parse(path: Path, ocr: OcrOptions | None = None) -> Parsed:
    """``path`` read by its format's reader; pages without text OCR'd as ``ocr`` says (default: on)."""
    module, function = require_reader(path.name)
    if module in _OCR_MODULES:
        reader: OcrReader = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        return reader(path, ocr or OcrOptions())
    return reader_for(path.name)(path)
