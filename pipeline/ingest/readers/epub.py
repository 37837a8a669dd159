"""EPUB books through kreuzberg (its spine-ordered Markdown: chapters and their headings), then the
Markdown structure reader."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers.structure import Parsed
from pipeline.ingest.readers.text import markdown_document


def read_epub(path: Path) -> Parsed:
    from kreuzberg import ExtractionConfig, KreuzbergError, extract_file_sync

    # No cache (it would write beside the landing files); no OCR configured (it would fetch models).
    config = ExtractionConfig(output_format="markdown", use_cache=False)
    try:
        result = extract_file_sync(str(path), mime_type="application/epub+zip", config=config)
    except KreuzbergError as exc:
        raise UnreadableDocument(f"is not a readable EPUB book ({exc})",
                                 "check that the file is complete (re-export or re-download it)") from exc
    if not result.content.strip():
        raise UnreadableDocument("has no text (an EPUB without readable chapters)", "check the book in a reader")
    metadata = result.metadata if isinstance(result.metadata, dict) else {}
    title = metadata.get("title") if isinstance(metadata.get("title"), str) else None
    authors = metadata.get("authors")
    return markdown_document(result.content, title, {"author": ", ".join(authors)} if isinstance(authors, list) else {})
