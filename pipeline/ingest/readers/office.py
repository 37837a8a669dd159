"""Office Open XML: Word (python-docx: heading styles as sections, tables as rows), PowerPoint
(python-pptx: one section per slide, its title, text, tables and speaker notes) and Excel (openpyxl:
one section per sheet, rows as text)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.structure import Builder, Parsed

# An encrypted .docx/.pptx/.xlsx is not a ZIP but an OLE compound file holding the encrypted package.
_COMPOUND_FILE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _require_package(path: Path, kind: str) -> None:
    with path.open("rb") as handle:
        head = handle.read(8)
    if head == _COMPOUND_FILE:
        raise UnreadableDocument(f"is an encrypted (password-protected) or legacy binary {kind} file, not Office "
                                 "Open XML", f"save it in {kind} as a current-format file without a password")
    if not zipfile.is_zipfile(path):
        raise UnreadableDocument(f"is not a valid {kind} file (not a ZIP package)",
                                 "check that the file is complete (re-export or re-download it)")


def _corrupt(kind: str, exc: Exception) -> UnreadableDocument:
    return UnreadableDocument(f"is not a readable {kind} file ({type(exc).__name__}: {exc})",
                              "check that the file is complete (re-export or re-download it)")


def _rows(rows: Iterable[Iterable[Any]]) -> str:
    lines = []
    for row in rows:
        cells = ["" if value is None else " ".join(str(value).split()) for value in row]
        if any(cells):
            lines.append(" | ".join(cells).rstrip(" |"))
    return "\n".join(lines)


def _heading_level(style: str) -> int | None:
    if style == "Title":
        return 1
    name, _, number = style.rpartition(" ")
    return int(number) + 1 if name == "Heading" and number.isdigit() else None


def read_docx(path: Path) -> Parsed:
    import docx
    from docx.table import Table

    _require_package(path, "Word")
    try:
        document = docx.Document(str(path))
        builder = Builder()
        title = document.core_properties.title or None
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                builder.block(_rows([cell.text for cell in row.cells] for row in item.rows))
                continue
            level = _heading_level(item.style.name if item.style is not None else "")
            if level is not None:
                title = title or (item.text.strip() if level == 1 else None)
                builder.heading(level, item.text)
            else:
                builder.block(item.text)
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:  # a damaged package part
        raise _corrupt("Word", exc) from exc
    author = document.core_properties.author
    return builder.build(title or builder.first_heading, {"author": author} if author else {})


def read_pptx(path: Path) -> Parsed:
    import pptx

    _require_package(path, "PowerPoint")
    try:
        deck = pptx.Presentation(str(path))
        builder = Builder()
        slide_titles = []
        for number, slide in enumerate(deck.slides, start=1):
            builder.slide(number)
            title_shape = slide.shapes.title
            title = title_shape.text_frame.text if title_shape is not None and title_shape.has_text_frame else ""
            slide_titles.append(title.strip())
            if title.strip():
                builder.heading(1, title)
            for shape in slide.shapes:
                if title_shape is not None and shape.shape_id == title_shape.shape_id:
                    continue
                if shape.has_text_frame:
                    builder.block(shape.text_frame.text)
                elif getattr(shape, "has_table", False) and shape.has_table:
                    builder.block(_rows([cell.text for cell in row.cells] for row in shape.table.rows))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text
                if notes.strip():
                    builder.block(f"Notes: {notes}")
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise _corrupt("PowerPoint", exc) from exc
    title = deck.core_properties.title or next((t for t in slide_titles if t), None)
    return builder.build(title, {"slides": len(slide_titles)})


def read_xlsx(path: Path) -> Parsed:
    import openpyxl

    _require_package(path, "Excel")
    try:
        workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise _corrupt("Excel", exc) from exc
    try:
        builder = Builder()
        sheets = []
        for sheet in workbook.worksheets:
            sheets.append(sheet.title)
            builder.heading(1, sheet.title)
            # Many writers record a wrong used range (often just A1); read-only mode would trust it.
            sheet.reset_dimensions()
            builder.block(_rows(sheet.iter_rows(values_only=True)))
        title = workbook.properties.title or None
    finally:
        workbook.close()
    return builder.build(title or path.stem, {"sheets": sheets})
