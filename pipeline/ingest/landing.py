"""The landing directory: one sub-folder per ingest day (``YYYY-MM-DD/``); which files each day holds,
and a signature of them that changes whenever a file does, read from the listing alone."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pipeline.errors import ConfigError

# Every file of a day folder: one no reader knows becomes a dead letter saying so, never silently
# skipped. Hidden files and folders (.DS_Store, .git, editor swap files) are not documents.
DEFAULT_PATTERNS: tuple[str, ...] = ("*",)
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
_HIDDEN = re.compile(r"\.[^.]")  # ".git", ".DS_Store", ".~lock.x.docx#"; not a name like "..%2fx.md"


def day_folder(landing_dir: Path, day: dt.date) -> Path:
    return landing_dir / day.isoformat()


def require_landing_dir(landing_dir: Path) -> Path:
    if not landing_dir.is_dir():
        raise ConfigError(
            f"landing directory {landing_dir} does not exist. Create it with one YYYY-MM-DD/ folder per day, "
            "set the source resource's landing_dir (or DOCVEC_LANDING_DIR), or run `docvec sample-corpus`."
        )
    return landing_dir


def list_days(landing_dir: Path) -> list[dt.date]:
    """The ingest days present in the landing directory, oldest first."""
    days = []
    for child in require_landing_dir(landing_dir).iterdir():
        try:
            days.append(dt.date.fromisoformat(child.name))
        except ValueError:
            continue
        if not child.is_dir():
            days.pop()
    return sorted(days)


def iter_day_files(landing_dir: Path, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS) -> Iterator[Path]:
    folder = day_folder(landing_dir, day)
    if not folder.is_dir():
        return
    seen: set[Path] = set()
    for pattern in patterns:
        for path in folder.rglob(pattern):
            # Everything but directories: FIFOs, sockets and devices are reported, not silently skipped.
            hidden = any(_HIDDEN.match(part) for part in path.relative_to(folder).parts)
            if path not in seen and not hidden and (path.is_symlink() or not path.is_dir()):
                seen.add(path)
    yield from sorted(seen)


def day_signature(landing_dir: Path, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS) -> str:
    """A cheap change detector for a day folder: names, sizes, inodes, modification and change times (no
    file is read). The change time moves on any write, rename or chmod and cannot be set back by tools that
    preserve mtimes (``rsync -t``, ``touch -d``), so equal signatures mean the same bytes in practice."""
    return files_signature(day_folder(landing_dir, day), iter_day_files(landing_dir, day, patterns))


def files_signature(folder: Path, files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        try:
            info = path.stat()
            stamp = f"{info.st_size}\x1f{info.st_ino}\x1f{info.st_mtime_ns}\x1f{info.st_ctime_ns}\x1f{info.st_mode}"
        except OSError:
            stamp = "unreadable"
        digest.update(f"{path.relative_to(folder).as_posix()}\x1f{stamp}\n".encode())
    return digest.hexdigest()[:32]
