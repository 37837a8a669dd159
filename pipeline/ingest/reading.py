"""Reading one day's files: each checked by its landing (inside its day, a regular file, within the
size limit, a format docvec reads; downloaded when it is in object storage), parsed by its reader
(text formats here, the others in worker processes under time and memory limits), and turned into a
``SourceDocument`` with its structure, or into a dead letter that names the file and the fix while
the rest of the day goes on."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import BadInputError, UnreadableDocument
from pipeline.ingest import permissions
from pipeline.ingest.landing import DEFAULT_MAX_FILE_BYTES, CheckedFile, Landing, LandingFile
from pipeline.ingest.parse_pool import ParseLimits, parse_files
from pipeline.ingest.readers import IN_PROCESS, parse
from pipeline.ingest.readers.structure import Parsed
from pipeline.records import DeadLetter, KeptDocument, SourceDocument


@dataclass(frozen=True)
class DayRead:
    day: dt.date
    documents: list[SourceDocument]
    dead_letters: list[DeadLetter]
    files_seen: int
    # Files whose bytes hash to the stored ones (copied or synced again): checked, not parsed.
    same_bytes: list[KeptDocument] = field(default_factory=list)


def to_document(checked: CheckedFile, day: dt.date, parsed: Parsed) -> SourceDocument:
    if not parsed.text.strip():
        raise BadInputError(checked.source_uri, "has no text (empty or whitespace only)",
                            "remove the file or give it content")
    metadata: dict[str, Any] = {"path": checked.doc_id, "format": checked.path.suffix.lower().lstrip("."),
                                **parsed.metadata}
    metadata.pop(permissions.OBJECT_READERS, None)  # only the store's own metadata sets it, never a file's text
    if checked.object_readers is not None:
        metadata[permissions.OBJECT_READERS] = list(checked.object_readers)
    if parsed.title:
        metadata["title"] = parsed.title
    return SourceDocument(doc_id=checked.doc_id, source_uri=checked.source_uri, ingest_date=day, text=parsed.text,
                          content_sha256=checked.content_sha256, bytes=checked.size, metadata=metadata,
                          sections=parsed.sections, stamp=checked.stamp, links=parsed.links)


def with_object_readers(landing: Landing, day: dt.date, checked: CheckedFile) -> CheckedFile:
    """``checked`` with the readers its object's metadata declares (one request to the store, for a file
    about to be parsed); ``BadInputError`` naming the object and the fix when a principal there is invalid."""
    value = landing.readers_metadata(day, checked)
    if value is None:
        return checked
    where = f"{landing.url.rstrip('/')}/{checked.source_uri}"
    return replace(checked, object_readers=permissions.from_object_metadata(value, checked.source_uri, where))


def read_day(landing: Landing, day: dt.date, files: Sequence[LandingFile],
             max_bytes: int = DEFAULT_MAX_FILE_BYTES, limits: ParseLimits | None = None,
             known: Mapping[str, str] | None = None) -> DayRead:
    """Every listed file of one day: the good ones as documents, the bad ones as dead letters. Text
    formats are parsed here; the others in parallel worker processes under ``limits``. Files downloaded
    from object storage are staged in a temporary folder removed before this returns. A file whose
    bytes hash (taken by its check, streamed) to its ``known`` stored hash ({doc_id: sha256}) is not
    parsed: it comes back in ``same_bytes``."""
    checked: list[CheckedFile] = []
    same: list[KeptDocument] = []
    dead: list[DeadLetter] = []
    documents: list[SourceDocument] = []
    with tempfile.TemporaryDirectory(prefix="docvec-staging-") as staging:
        for file in files:
            try:
                ready = landing.check(day, file, max_bytes, Path(staging))
            except BadInputError as exc:
                dead.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
                continue
            if known and known.get(ready.doc_id) == ready.content_sha256:
                same.append(KeptDocument(ready.doc_id, ready.content_sha256, stamp=ready.stamp))
                continue
            try:
                checked.append(with_object_readers(landing, day, ready))
            except BadInputError as exc:
                dead.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
        pooled = [c for c in checked if c.path.suffix.lower() not in IN_PROCESS]
        outcomes: dict[int, Parsed | UnreadableDocument] = dict(zip(
            (id(c) for c in pooled), parse_files([c.path for c in pooled], limits or ParseLimits()), strict=True))
        for ready in checked:
            try:
                outcome = outcomes[id(ready)] if id(ready) in outcomes else parse(ready.path)
            except UnreadableDocument as exc:
                outcome = exc
            try:
                if isinstance(outcome, UnreadableDocument):
                    raise BadInputError(ready.source_uri, outcome.reason, outcome.fix)
                documents.append(to_document(ready, day, outcome))
            except BadInputError as exc:
                dead.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
    return DayRead(day=day, documents=documents, dead_letters=dead, files_seen=len(files), same_bytes=same)
