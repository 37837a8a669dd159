"""The landing zone: one folder (or key prefix) per ingest day (``YYYY-MM-DD/``) on local disk or in
object storage (``object_storage.py``). It says which files each day holds, gives a signature of
them from the listing alone (changed whenever a file is), and hands each file over as a checked
local file to parse: the file itself on disk, a bounded download from object storage."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import BadInputError, ConfigError, ListingError, UnreadableDocument
from pipeline.ingest.readers import require_reader

# Every file of a day folder: one no reader knows becomes a dead letter saying so, never silently
# skipped. Hidden files and folders (.DS_Store, .git, editor swap files) are not documents.
DEFAULT_PATTERNS: tuple[str, ...] = ("*",)
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
# The readers sidecar (pipeline/ingest/permissions.py): the one control file a collection's root holds too.
READERS_SIDECAR = ".docvec-readers"
_HIDDEN = re.compile(r"\.[^.]")  # ".git", ".DS_Store", ".~lock.x.docx#"; not a name like "..%2fx.md"


@dataclass(frozen=True)
class LandingFile:
    """A file of a day as the listing shows it."""
    rel: str  # its path below the day folder: the document's id
    size: int
    stamp: str  # what changes when its bytes do: inode and times on disk, ETag or generation in a bucket
    location: str  # where the landing finds it: a local path, or the object's key


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed every check before parsing, as a local file to parse."""
    path: Path
    doc_id: str  # its path below the day folder
    source_uri: str  # its path below the landing root
    size: int
    content_sha256: str
    stamp: str = ""  # the listing stamp it was checked with
    # The readers its object's metadata declares (object storage's ``docvec-readers``; permissions.py),
    # read once before it is parsed; None: it declares none.
    object_readers: tuple[str, ...] | None = None


def visible(rel: str, patterns: Sequence[str]) -> bool:
    parts = PurePosixPath(rel).parts
    return not any(_HIDDEN.match(part) for part in parts) and any(PurePosixPath(rel).match(p) for p in patterns)


def same_stamp(file: LandingFile, stored_stamp: str | None) -> bool:
    """Whether the file is exactly as when it was last loaded (its listing stamp is the same)."""
    return bool(stored_stamp) and file.stamp == stored_stamp and file.stamp != "unreadable"


def signature(files: Sequence[LandingFile]) -> str:
    """A cheap change detector for a day: names and stamps, from the listing (no file is read)."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.rel):
        digest.update(f"{file.rel}\x1f{file.stamp}\n".encode())
    return digest.hexdigest()[:32]


def require_format(source_uri: str, name: str) -> None:
    try:
        require_reader(name)
    except UnreadableDocument as exc:
        raise BadInputError(source_uri, exc.reason, exc.fix) from exc


def too_large(source_uri: str, size: int, max_bytes: int) -> BadInputError:
    return BadInputError(source_uri, f"is {size:,} bytes, over the {max_bytes:,}-byte limit",
                         "split it into smaller files or raise the source's max_file_bytes")


class Landing(ABC):
    """Where ingest days land. ``url`` names it in messages (never with a credential).

    A landing opened as a ``collection`` is one living folder (or prefix), not a stream of day folders:
    every "day" of it is the whole folder as it is when listed (a snapshot), and a document's id and
    source URI are its path below the folder."""

    url: str
    collection: bool = False

    @abstractmethod
    def days(self) -> list[dt.date]:
        """The ingest days present, oldest first."""

    @abstractmethod
    def files(self, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS) -> list[LandingFile]:
        """The day's files (one listing), sorted by path."""

    @abstractmethod
    def check(self, day: dt.date, file: LandingFile, max_bytes: int, staging: Path) -> CheckedFile:
        """The file as a local file to parse, after every check that needs no parser (``BadInputError``
        naming it and the fix otherwise). Downloads go below ``staging``."""

    def source_uri(self, day: dt.date, file: LandingFile) -> str:
        return file.rel if self.collection else f"{day.isoformat()}/{file.rel}"

    @abstractmethod
    def control_file(self, day: dt.date, name: str) -> LandingFile | None:
        """The day folder's control file ``name`` (a hidden name, so never a document: the deletion
        manifest, the readers sidecar) as a listing shows it, or None when the day has none. A
        collection's root holds only the readers sidecar (``READERS_SIDECAR``)."""

    @abstractmethod
    def read_control(self, day: dt.date, file: LandingFile, max_bytes: int) -> bytes:
        """A control file's bytes (``BadInputError`` naming it and the fix when it cannot be read or is
        over ``max_bytes``)."""

    def readers_metadata(self, day: dt.date, checked: CheckedFile) -> str | None:
        """The readers the store keeps as the file's own metadata (object storage's ``docvec-readers``),
        as text, or None when it keeps none. Asked only of a file about to be parsed (its bytes changed),
        never of an unchanged one. A local file has none."""
        return None

    @abstractmethod
    def has_day(self, day: dt.date) -> bool:
        """Whether the day's folder exists (empty or not): a day whose ``files`` are none is an empty day
        only if it does. ``ConfigError`` naming the landing when the landing itself does not exist."""

    @abstractmethod
    def holds_undated_files(self) -> bool:
        """Whether the landing holds files but no day folder (a collection, not a stream of days)."""

    def holding_days(self) -> list[dt.date]:
        """The days whose ``files`` hold the landing's documents: its day folders, or for a collection
        its one snapshot (any day lists the whole collection)."""
        return [dt.date.min] if self.collection else self.days()

    def day_url(self, day: dt.date) -> str:
        """Where the day's folder is expected, for messages."""
        return f"{self.url.rstrip('/')}/" if self.collection else f"{self.url.rstrip('/')}/{day.isoformat()}/"

    def same_content(self, file: LandingFile, stored_stamp: str | None) -> bool:
        """Whether the listing alone proves the file's bytes are those loaded under ``stored_stamp``."""
        return same_stamp(file, stored_stamp)


class LocalLanding(Landing):
    """A local directory. Files are checked where they are: links must resolve inside the landing
    directory, FIFOs and devices are refused before anything opens them."""

    def __init__(self, root: Path, *, collection: bool = False) -> None:
        self.root = root.expanduser().resolve()
        self.url = str(self.root)
        self.collection = collection

    def require(self) -> Path:
        if not self.root.is_dir() and self.collection:
            raise ConfigError(
                f"collection folder {self.root} does not exist (or is not a folder). Fix the source resource's "
                "landing_dir (or DOCVEC_LANDING_DIR), or mount the folder: a missing folder is never read as an "
                "empty collection.")
        if not self.root.is_dir():
            raise ConfigError(
                f"landing directory {self.root} does not exist. Create it with one YYYY-MM-DD/ folder per day, "
                "set the source resource's landing_dir (or DOCVEC_LANDING_DIR), or run `docvec sample-corpus`."
            )
        return self.root

    def folder(self, day: dt.date) -> Path:
        return self.root if self.collection else self.root / day.isoformat()

    def has_day(self, day: dt.date) -> bool:
        self.require()
        return self.folder(day).is_dir()

    def holds_undated_files(self) -> bool:
        if self.days():
            return False
        return any(visible(path.relative_to(self.root).as_posix(), DEFAULT_PATTERNS) and not path.is_dir()
                   for path in self.root.rglob("*"))

    def days(self) -> list[dt.date]:
        found = []
        for child in self.require().iterdir():
            try:
                day = dt.date.fromisoformat(child.name)
            except ValueError:
                continue
            if child.is_dir():
                found.append(day)
        return sorted(found)

    def _paths(self, day: dt.date, patterns: Sequence[str]) -> Iterator[Path]:
        """Every entry of the day's folder but directories and hidden names, sorted. A folder that
        cannot be listed fails the listing (``ListingError``): skipping it would read its files as
        deleted. FIFOs, sockets, devices and links (to directories too) are yielded, for ``check`` to
        report rather than silently skip."""
        folder = self.folder(day)
        if not folder.is_dir():
            return

        def fail(error: OSError) -> None:
            raise error

        found: list[Path] = []
        try:
            for dirpath, dirnames, filenames in os.walk(folder, onerror=fail):
                here = Path(dirpath)
                links = [name for name in dirnames if (here / name).is_symlink()]
                dirnames[:] = sorted(name for name in dirnames if not _HIDDEN.match(name) and name not in links)
                for name in [*filenames, *links]:
                    path = here / name
                    if visible(path.relative_to(folder).as_posix(), patterns):
                        found.append(path)
        except OSError as exc:
            where = getattr(exc, "filename", None) or folder
            raise ListingError(
                f"listing {self.day_url(day)} failed at {where} ({type(exc).__name__}: {exc.strerror or exc}); nothing "
                "was read or deleted. Make every folder below it readable by the user running docvec, then rerun."
            ) from exc
        yield from sorted(found)

    def files(self, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS) -> list[LandingFile]:
        self.require()
        folder = self.folder(day)
        listed = []
        for path in self._paths(day, patterns):
            # Size, inode, modification and change times: the change time moves on any write, rename or
            # chmod and cannot be set back by tools that preserve mtimes (rsync -t, touch -d).
            try:
                info = path.stat()
                stamp = f"{info.st_size}\x1f{info.st_ino}\x1f{info.st_mtime_ns}\x1f{info.st_ctime_ns}\x1f{info.st_mode}"
                size = info.st_size
            except OSError:
                stamp, size = "unreadable", 0
            listed.append(LandingFile(path.relative_to(folder).as_posix(), size, stamp, str(path)))
        return listed

    def check(self, day: dt.date, file: LandingFile, max_bytes: int, staging: Path) -> CheckedFile:
        path = Path(file.location)
        source_uri = self.source_uri(day, file)
        real = path.resolve()
        if not real.is_relative_to(self.root):
            raise BadInputError(source_uri, f"resolves outside the landing directory ({real})",
                                "copy the file into the day folder instead of linking to it")
        require_format(source_uri, path.name)
        try:
            info = real.stat()
            if not stat.S_ISREG(info.st_mode):
                # Opening a FIFO would block the whole run; a device could be endless.
                raise BadInputError(source_uri, "is not a regular file (a FIFO, socket or device)",
                                    "remove it from the landing directory; only regular files are ingested")
            if info.st_size > max_bytes:
                raise too_large(source_uri, info.st_size, max_bytes)
            digest = hashlib.sha256()
            with real.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except PermissionError as exc:
            raise BadInputError(source_uri, "cannot be read (permission denied)",
                                "make it readable by the user running docvec") from exc
        except FileNotFoundError as exc:
            raise BadInputError(source_uri, "vanished or is a broken link", "restore it or remove the link") from exc
        return CheckedFile(real, file.rel, source_uri, info.st_size, digest.hexdigest(), file.stamp)

    def control_file(self, day: dt.date, name: str) -> LandingFile | None:
        if self.collection and name != READERS_SIDECAR:  # a collection says what went by not holding it any more
            return None
        path = self.folder(day) / name
        try:
            info = path.lstat()
        except OSError:
            return None
        stamp = f"{info.st_size}\x1f{info.st_ino}\x1f{info.st_mtime_ns}\x1f{info.st_ctime_ns}\x1f{info.st_mode}"
        return LandingFile(name, info.st_size, stamp, str(path))

    def read_control(self, day: dt.date, file: LandingFile, max_bytes: int) -> bytes:
        path, source_uri = Path(file.location), self.source_uri(day, file)
        if not path.resolve().is_relative_to(self.root) or not path.resolve().is_file():
            raise BadInputError(source_uri, "is not a regular file inside the landing directory",
                                "make it a plain file in the day folder")
        if path.stat().st_size > max_bytes:
            raise too_large(source_uri, path.stat().st_size, max_bytes)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BadInputError(source_uri, f"cannot be read ({type(exc).__name__})",
                                "make it readable by the user running docvec") from exc
