"""Who may read a document: its ``readers``, principals (``alice@example.com``, ``group:hr``,
``tenant:acme``; ``*`` for everyone) stored on each of its versions, which PostgreSQL's row-level
security checks against a search session's principals (migration 0012_permissions).

Where a document's readers come from, first match wins:

1. its own metadata's ``readers`` (Markdown front matter: ``readers: [alice, group:hr]`` or
   ``readers: "alice, group:hr"``); an invalid principal there makes the document a dead letter;
2. its object's own metadata in object storage: ``docvec-readers`` (S3 ``x-amz-meta-docvec-readers``,
   GCS custom metadata; ``docvec_readers`` on Azure, whose metadata names take no hyphen), principals
   separated by commas. Listings do not carry it, so it is read (one HEAD) only when the object is
   about to be parsed (its bytes changed), and stored with the version (``metadata.object_readers``)
   for later runs that keep it; an invalid principal there makes the document a dead letter;
3. the sidecar ``.docvec-readers`` at the top of the day folder (or of a collection's root): lines
   ``GLOB PRINCIPAL [PRINCIPAL ...]`` matched against the document id, the last matching line wins
   (a malformed sidecar is a ``ConfigError``: nothing of the day changes);
4. the default: ``*`` while permissions are off, the configured ``default_readers`` (none: nobody)
   once they are on.

The sidecar is a control file like the deletion manifest: hidden, never a document, and part of the
listing signature, so editing it re-plans the day; kept documents get their readers recomputed from
their stored metadata without being parsed or embedded again.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.errors import BadInputError, ConfigError
from pipeline.ingest.landing import READERS_SIDECAR, Landing, LandingFile
from pipeline.records import DeadLetter, KeptDocument, SourceDocument

SIDECAR = READERS_SIDECAR
# Where a version stores the readers its object's metadata declared (storage/days.py reads the same key).
OBJECT_READERS = "object_readers"
EVERYONE: tuple[str, ...] = ("*",)
MAX_PRINCIPAL_CHARS = 200
MAX_SIDECAR_BYTES = 1024 * 1024
PRINCIPAL_FIX = ("a principal is a non-empty name without spaces or commas, at most 200 characters "
                 "(alice@example.com, group:hr, tenant:acme), or * for everyone")


def principal_problem(principal: object) -> str | None:
    """Why ``principal`` is not a valid principal, or None when it is."""
    if not isinstance(principal, str):
        return f"{principal!r} is not a text"
    if not principal:
        return "an empty principal"
    if len(principal) > MAX_PRINCIPAL_CHARS:
        return f"{principal[:40]!r}… is over {MAX_PRINCIPAL_CHARS} characters"
    if any(ch.isspace() or ch == "," for ch in principal):
        return f"{principal!r} holds a space or a comma"
    return None


def normalized(principals: Iterable[str]) -> tuple[str, ...]:
    """Principals as stored: sorted, without repeats; any list holding ``*`` is just ``*``."""
    unique = set(principals)
    return EVERYONE if "*" in unique else tuple(sorted(unique))


def declared(value: Any, source_uri: str) -> tuple[str, ...]:
    """The readers a document's metadata declares (a list of principals, or one text of them separated
    by commas, in brackets or not); ``BadInputError`` naming the document, the bad value and the fix otherwise."""
    items: list[Any]
    if isinstance(value, str):  # front matter keeps values as text: "alice, group:hr" or "[alice, group:hr]"
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1].strip()
        items = [part.strip().strip("\"'") for part in text.split(",")] if text else []
    elif isinstance(value, list | tuple):
        items = [item.strip() if isinstance(item, str) else item for item in value]
    else:
        raise BadInputError(source_uri, f"has readers {value!r} in its metadata, which is not a list of principals",
                            f"write readers: [alice, group:hr] in its front matter; {PRINCIPAL_FIX}")
    for item in items:
        problem = principal_problem(item)
        if problem is not None:
            raise BadInputError(source_uri, f"has an invalid reader in its metadata: {problem}",
                                f"fix its front matter's readers; {PRINCIPAL_FIX}")
    return normalized(items)


def from_object_metadata(value: str, source_uri: str, where: str) -> tuple[str, ...]:
    """The readers an object's ``docvec-readers`` metadata declares (principals separated by commas; an
    empty value: nobody but the store's owners); ``BadInputError`` naming the object ``where``, the bad
    principal and the fix otherwise."""
    items = [part.strip() for part in value.split(",")] if value.strip() else []
    for item in items:
        problem = principal_problem(item)
        if problem is not None:
            raise BadInputError(
                source_uri, f"has an invalid reader in its object metadata docvec-readers ({where}): {problem}",
                "set the object's docvec-readers metadata to principals separated by commas (e.g. aws s3 cp "
                f"{where} {where} --metadata-directive REPLACE --metadata docvec-readers=group:hr,alice); "
                f"{PRINCIPAL_FIX}")
    return normalized(items)


def declared_in(metadata: Mapping[str, Any]) -> Any:
    """What a document's metadata declares as its readers: its front matter's ``readers``, else those
    its object's metadata declared (``OBJECT_READERS``), else None."""
    front = metadata.get("readers")
    return front if front is not None else metadata.get(OBJECT_READERS)


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A sidecar glob as a regular expression over document ids: ``*`` and ``?`` stay within a folder,
    ``**`` spans folders; a glob without a ``/`` matches a file name at any depth (``*.pdf``, ``*``)."""
    anchored = glob.lstrip("/")
    if "/" not in anchored:
        anchored = "**/" + anchored
    out, i = [], 0
    while i < len(anchored):
        if anchored.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif anchored.startswith("**", i):
            out.append(".*")
            i += 2
        elif anchored[i] == "*":
            out.append("[^/]*")
            i += 1
        elif anchored[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(anchored[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class Rule:
    glob: str
    pattern: re.Pattern[str]
    readers: tuple[str, ...]


@dataclass(frozen=True)
class Sidecar:
    """A ``.docvec-readers`` file as read (``file`` None: there is none): its rules, in file order."""
    file: LandingFile | None = None
    rules: tuple[Rule, ...] = ()

    def readers_of(self, doc_id: str) -> tuple[str, ...] | None:
        """The readers of the last rule whose glob matches ``doc_id``, or None when none does."""
        for rule in reversed(self.rules):
            if rule.pattern.match(doc_id):
                return rule.readers
        return None


def parse_sidecar(text: str, where: str) -> tuple[Rule, ...]:
    """A sidecar's rules; ``ConfigError`` naming ``where``, the line and the fix for a malformed line."""
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        glob, *principals = entry.split()
        problems = [p for p in (principal_problem(principal) for principal in principals) if p]
        if not principals or problems:
            reason = problems[0] if problems else f"{glob!r} names no principal"
            raise ConfigError(
                f"{where}, line {number}: {reason}. Each line is GLOB PRINCIPAL [PRINCIPAL ...] (e.g. "
                f"`hr/** group:hr`; {PRINCIPAL_FIX}); fix or remove the line. Nothing of the day was changed.")
        rules.append(Rule(glob, glob_pattern(glob), normalized(principals)))
    return tuple(rules)


def find_sidecar(landing: Landing, day: dt.date) -> LandingFile | None:
    """The day folder's (or collection root's) sidecar as its listing shows it (no read), or None."""
    return landing.control_file(day, SIDECAR)


def read_sidecar(landing: Landing, day: dt.date, file: LandingFile | None) -> Sidecar:
    """The sidecar ``file`` read and parsed; one that cannot be read, is not UTF-8 text or has a
    malformed line is a ``ConfigError`` (never a default that could open documents up)."""
    if file is None:
        return Sidecar()
    where = f"{landing.url.rstrip('/')}/{landing.source_uri(day, file)}"
    try:
        data = landing.read_control(day, file, MAX_SIDECAR_BYTES)
        text = data.decode("utf-8-sig")
    except BadInputError as exc:
        raise ConfigError(f"{where}: the readers sidecar {exc.reason}. {exc.fix}. Nothing of the day was "
                          "changed.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: the readers sidecar is not UTF-8 text (at byte {exc.start}). Save it as "
                          "UTF-8 text, one GLOB PRINCIPAL [PRINCIPAL ...] per line. Nothing of the day was "
                          "changed.") from exc
    return Sidecar(file, parse_sidecar(text, where))


@dataclass(frozen=True)
class PermissionSettings:
    """The source's permission settings: while ``enabled`` is off, a document that names no readers
    (front matter or sidecar) is readable by everyone, as before permissions existed; once on, by
    ``default_readers`` (none: nobody but the store's owners)."""
    enabled: bool = False
    default_readers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for principal in self.default_readers:
            problem = principal_problem(principal)
            if problem is not None:
                raise ConfigError(f"the source resource's default_readers: {problem}; {PRINCIPAL_FIX}")

    @property
    def default(self) -> tuple[str, ...]:
        return normalized(self.default_readers) if self.enabled else EVERYONE

    def listing_entry(self) -> LandingFile | None:
        """A pseudo-file for the day's listing signature that changes with the default (None while off,
        so stores without permissions keep their signatures): changing the default re-plans each day,
        which recomputes kept documents' readers without parsing them."""
        if not self.enabled:
            return None
        return LandingFile("\x00docvec-default-readers", 0, ",".join(self.default), "")


@dataclass(frozen=True)
class Policy:
    """Everything that decides a day's readers: the settings' default, the day's sidecar, and the
    readers kept documents declared in their stored metadata (``stored``: {doc_id: metadata readers})."""
    settings: PermissionSettings = PermissionSettings()
    sidecar: Sidecar = Sidecar()
    stored: Mapping[str, Any] = field(default_factory=dict)

    def readers(self, doc_id: str, source_uri: str, metadata_readers: Any = None) -> tuple[str, ...]:
        """A document's readers: its metadata's (``declared_in``: front matter, else its object's
        metadata), else the sidecar's, else the default."""
        if metadata_readers is not None:
            return declared(metadata_readers, source_uri)
        from_sidecar = self.sidecar.readers_of(doc_id)
        return from_sidecar if from_sidecar is not None else self.settings.default

    def apply(self, day: dt.date, documents: Sequence[SourceDocument], kept: Sequence[KeptDocument],
              source_uri: Mapping[str, str]) -> tuple[list[SourceDocument], tuple[KeptDocument, ...], list[DeadLetter]]:
        """The day's documents and kept documents with their readers; those whose metadata names an
        invalid reader become dead letters (``source_uri``: {doc_id: uri} of kept documents)."""
        letters: list[DeadLetter] = []
        ready: list[SourceDocument] = []
        for document in documents:
            try:
                readers = self.readers(document.doc_id, document.source_uri, declared_in(document.metadata))
            except BadInputError as exc:
                letters.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
                continue
            ready.append(replace(document, readers=readers))
        kept_ready: list[KeptDocument] = []
        for kept_document in kept:
            uri = source_uri.get(kept_document.doc_id, kept_document.doc_id)
            try:
                readers = self.readers(kept_document.doc_id, uri, self.stored.get(kept_document.doc_id))
            except BadInputError as exc:
                letters.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
                continue
            kept_ready.append(replace(kept_document, readers=readers))
        return ready, tuple(kept_ready), letters
