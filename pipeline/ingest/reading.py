"""Reading one day's files: check each (inside its day, a regular file, within the size limit, a
format docvec reads), parse it with its reader (text formats here, the others in worker processes
under time and memory limits), and turn it into a ``SourceDocument`` with its structure, or into a
dead letter that names the file and the fix while the rest of the day goes on."""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import BadInputError, UnreadableDocument
from pipeline.ingest.landing import DEFAULT_MAX_FILE_BYTES, DEFAULT_PATTERNS, day_folder, iter_day_files
from pipeline.ingest.parse_pool import ParseLimits, parse_files
from pipeline.ingest.readers import IN_PROCESS, parse, require_reader
from pipeline.ingest.readers.structure import Parsed
from pipeline.records import DeadLetter, SourceDocument


@dataclass(frozen=True)
class DayRead:
    day: dt.date
    documents: list[SourceDocument]
    dead_letters: list[DeadLetter]
    files_seen: int


@dataclass(frozen=True)
class CheckedFile:
    path: Path  # the file to parse (inside the landing directory)
    doc_id: str  # its path below the day folder
    source_uri: str  # its path below the landing root
    size: int
    content_sha256: str


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, landing_dir: Path, day: dt.date, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> CheckedFile:
    """Everything about a file that can be known before parsing it; ``BadInputError`` otherwise."""
    root = landing_dir.resolve()
    folder = day_folder(root, day)
    source_uri = path.relative_to(landing_dir).as_posix() if path.is_relative_to(landing_dir) else str(path)
    real = path.resolve()
    if not real.is_relative_to(root):
        raise BadInputError(source_uri, f"resolves outside the landing directory ({real})",
                            "copy the file into the day folder instead of linking to it")
    try:
        require_reader(path.name)
        info = real.stat()
        if not stat.S_ISREG(info.st_mode):
            # Opening a FIFO would block the whole run; a device could be endless.
            raise BadInputError(source_uri, "is not a regular file (a FIFO, socket or device)",
                                "remove it from the landing directory; only regular files are ingested")
        if info.st_size > max_bytes:
            raise BadInputError(source_uri, f"is {info.st_size:,} bytes, over the {max_bytes:,}-byte limit",
                                "split it into smaller files or raise the source's max_file_bytes")
        content_sha256 = _hash(real)
    except UnreadableDocument as exc:
        raise BadInputError(source_uri, exc.reason, exc.fix) from exc
    except PermissionError as exc:
        raise BadInputError(source_uri, "cannot be read (permission denied)",
                            "make it readable by the user running docvec") from exc
    except FileNotFoundError as exc:
        raise BadInputError(source_uri, "vanished or is a broken link", "restore it or remove the link") from exc
    doc_id = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name
    return CheckedFile(real, doc_id, source_uri, info.st_size, content_sha256)


def to_document(checked: CheckedFile, day: dt.date, parsed: Parsed) -> SourceDocument:
    if not parsed.text.strip():
        raise BadInputError(checked.source_uri, "has no text (empty or whitespace only)",
                            "remove the file or give it content")
    metadata: dict[str, Any] = {"path": checked.doc_id, "format": checked.path.suffix.lower().lstrip("."),
                                **parsed.metadata}
    if parsed.title:
        metadata["title"] = parsed.title
    return SourceDocument(doc_id=checked.doc_id, source_uri=checked.source_uri, ingest_date=day, text=parsed.text,
                          content_sha256=checked.content_sha256, bytes=checked.size, metadata=metadata,
                          sections=parsed.sections)


def read_document(path: Path, landing_dir: Path, day: dt.date, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> SourceDocument:
    """Read and validate one file in this process; raise ``BadInputError`` naming it and the fix."""
    checked = check_file(path, landing_dir, day, max_bytes)
    try:
        parsed = parse(checked.path)
    except UnreadableDocument as exc:
        raise BadInputError(checked.source_uri, exc.reason, exc.fix) from exc
    return to_document(checked, day, parsed)


def read_day(landing_dir: Path, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS,
             max_bytes: int = DEFAULT_MAX_FILE_BYTES, limits: ParseLimits | None = None) -> DayRead:
    """Every file of one day: the good ones as documents, the bad ones as dead letters. Text formats are
    parsed here; the others in parallel worker processes under ``limits``."""
    files = list(iter_day_files(landing_dir, day, patterns))
    checked: list[CheckedFile] = []
    dead: list[DeadLetter] = []
    for path in files:
        try:
            checked.append(check_file(path, landing_dir, day, max_bytes))
        except BadInputError as exc:
            dead.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
    pooled = [c for c in checked if c.path.suffix.lower() not in IN_PROCESS]
    outcomes: dict[int, Parsed | UnreadableDocument] = dict(zip(
        (id(c) for c in pooled), parse_files([c.path for c in pooled], limits or ParseLimits()), strict=True))
    documents: list[SourceDocument] = []
    for file in checked:
        try:
            outcome = outcomes[id(file)] if id(file) in outcomes else parse(file.path)
        except UnreadableDocument as exc:
            outcome = exc
        try:
            if isinstance(outcome, UnreadableDocument):
                raise BadInputError(file.source_uri, outcome.reason, outcome.fix)
            documents.append(to_document(file, day, outcome))
        except BadInputError as exc:
            dead.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
    return DayRead(day=day, documents=documents, dead_letters=dead, files_seen=len(files))
