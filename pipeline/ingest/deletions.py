"""A day folder's deletion manifest, ``.docvec-deleted``: one document id per line (the file's path
below its day folder, as search shows it), blank lines and lines starting with ``#`` ignored. Its name
is hidden, so no reader ever ingests it as a document. Landed with day D, it deletes those documents as
of D: the day's load writes a tombstone for each (pipeline/storage/tombstones.py), which hides every
version stored on D or before; a version landed on a later day is live again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.errors import BadInputError
from pipeline.ingest.landing import Landing, LandingFile, signature
from pipeline.records import DeadLetter

MANIFEST = ".docvec-deleted"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Manifest:
    """A day's deletion manifest as read: the ids it deletes, or the dead letter saying why it could
    not be read (then it deletes nothing). ``file`` is None when the day has none."""
    file: LandingFile | None = None
    ids: tuple[str, ...] = ()
    dead_letters: list[DeadLetter] = field(default_factory=list)


def find(landing: Landing, day: dt.date) -> LandingFile | None:
    """The day's manifest as its listing shows it (no read), or None."""
    return landing.control_file(day, MANIFEST)


def listed_signature(files: Sequence[LandingFile], manifest: LandingFile | None,
                     *controls: LandingFile | None) -> str:
    """The day's listing signature: its files and, when there are, its manifest and other control
    files (the readers sidecar, the permission default's entry); a day without them keeps the signature
    it always had."""
    return signature([*files, *(f for f in (manifest, *controls) if f is not None)])


def parse(text: str) -> tuple[str, ...]:
    """The ids a manifest's text names, sorted and without repeats."""
    ids = set()
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            ids.add(entry.removeprefix("./"))
    return tuple(sorted(ids))


def read(landing: Landing, day: dt.date, file: LandingFile | None) -> Manifest:
    """The manifest ``file`` of ``day`` read and parsed; one that cannot be read or is not UTF-8 text
    becomes a dead letter naming it and the fix, and deletes nothing."""
    if file is None:
        return Manifest()
    source_uri = landing.source_uri(day, file)
    try:
        data = landing.read_control(day, file, MAX_MANIFEST_BYTES)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadInputError(source_uri, "is not UTF-8 text",
                                "save it as UTF-8 text, one document id per line") from exc
    except BadInputError as exc:
        return Manifest(file, (), [DeadLetter(exc.source, day, "read", exc.reason, exc.fix)])
    return Manifest(file, parse(text))


def contradicted(landing: Landing, day: dt.date, files: Sequence[LandingFile],
                 manifest: Manifest) -> tuple[list[LandingFile], list[DeadLetter]]:
    """The day's files to read, less those its own manifest deletes: each of those is a dead letter
    (the day both lands and deletes it; the deletion wins, the file is not read)."""
    deleted = set(manifest.ids)
    letters = [DeadLetter(landing.source_uri(day, f), day, "read",
                          f"is listed in the day's {MANIFEST}, so it is deleted as of this day and not loaded",
                          f"remove the file from the day folder, or its line from {MANIFEST}")
               for f in files if f.rel in deleted]
    return [f for f in files if f.rel not in deleted], letters
