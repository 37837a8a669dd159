"""Reading one landing file: validate it and turn it into plain text plus metadata, or into a
``BadInputError`` that names the file and the fix (the caller dead-letters it and goes on with the rest
of the day)."""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pipeline.errors import BadInputError
from pipeline.ingest.landing import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_PATTERNS,
    day_folder,
    iter_day_files,
)
from pipeline.records import DeadLetter, SourceDocument

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
_FRONT_MATTER_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class DayRead:
    day: dt.date
    documents: list[SourceDocument]
    dead_letters: list[DeadLetter]
    files_seen: int


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str | None]:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    text = re.sub(r"\s*\n\s*\n\s*", "\n\n", text).strip()
    title = " ".join("".join(parser.title).split()) or None
    return text, title


def split_front_matter(text: str) -> tuple[str, dict[str, str]]:
    """``key: value`` lines between ``---`` fences at the top become metadata (a YAML subset)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    metadata = {}
    for line in match.group(1).splitlines():
        pair = _FRONT_MATTER_LINE.match(line)
        if pair:
            metadata[pair.group(1)] = pair.group(2).strip("\"'")
    return text[match.end():], metadata


def decode_text(raw: bytes, source: str) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BadInputError(source, f"UTF-16 text is malformed at byte {exc.start}",
                                "re-save the file as UTF-8") from exc
    if b"\x00" in raw[:8192]:
        raise BadInputError(source, "looks binary (contains NUL bytes)",
                            "only UTF-8 text, Markdown or HTML files belong in the landing directory")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(source, f"is not valid UTF-8 (bad byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                            "re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8`") from exc


def read_document(path: Path, landing_dir: Path, day: dt.date, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> SourceDocument:
    """Read and validate one file; raise ``BadInputError`` naming it and the fix."""
    root = landing_dir.resolve()
    folder = day_folder(root, day)
    source_uri = path.relative_to(landing_dir).as_posix() if path.is_relative_to(landing_dir) else str(path)
    real = path.resolve()
    if not real.is_relative_to(root):
        raise BadInputError(source_uri, f"resolves outside the landing directory ({real})",
                            "copy the file into the day folder instead of linking to it")
    try:
        info = real.stat()
        if not stat.S_ISREG(info.st_mode):
            # Opening a FIFO would block the whole run; a device could be endless.
            raise BadInputError(source_uri, "is not a regular file (a FIFO, socket or device)",
                                "remove it from the landing directory; only regular text files are ingested")
        size = info.st_size
        if size > max_bytes:
            raise BadInputError(source_uri, f"is {size:,} bytes, over the {max_bytes:,}-byte limit",
                                "split it into smaller files or raise the source's max_file_bytes")
        raw = real.read_bytes()
    except PermissionError as exc:
        raise BadInputError(source_uri, "cannot be read (permission denied)",
                            "make it readable by the user running docvec") from exc
    except FileNotFoundError as exc:
        raise BadInputError(source_uri, "vanished or is a broken link", "restore it or remove the link") from exc
    text = decode_text(raw, source_uri)
    metadata: dict[str, Any] = {"path": path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name,
                                "format": path.suffix.lower().lstrip(".")}
    if path.suffix.lower() in {".html", ".htm"}:
        text, title = html_to_text(text)
    else:
        text, front = split_front_matter(text)
        metadata.update(front)
        title = metadata.get("title") or _first_heading(text)
    if title:
        metadata["title"] = title
    if not text.strip():
        raise BadInputError(source_uri, "has no text (empty or whitespace only)",
                            "remove the file or give it content")
    return SourceDocument(
        doc_id=path.relative_to(folder).as_posix(),
        source_uri=source_uri,
        ingest_date=day,
        text=text,
        content_sha256=hashlib.sha256(raw).hexdigest(),
        bytes=size,
        metadata=metadata,
    )


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:200]
    return None


def read_day(landing_dir: Path, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS,
             max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> DayRead:
    """Every file of one day: the good ones as documents, the bad ones as dead letters."""
    documents: list[SourceDocument] = []
    dead: list[DeadLetter] = []
    files = list(iter_day_files(landing_dir, day, patterns))
    for path in files:
        try:
            documents.append(read_document(path, landing_dir, day, max_bytes))
        except BadInputError as exc:
            dead.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
    return DayRead(day=day, documents=documents, dead_letters=dead, files_seen=len(files))
