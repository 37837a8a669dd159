"""``docvec forget``: erase documents from everything docvec keeps, and say what went.

Chosen by id (repeatable) or by a metadata filter (``KEY=VALUE`` pairs, as search takes them), every
version of each document goes (``storage/erasure.py``: chunks of every day and model, sealed blocks
included, ``documents`` rows, term statistics, dead letters, the touched days' fingerprints), plus the
day batches the pipeline's steps handed each other on disk that hold them, and an audit row records
the erasure without any of the text. Dagster's event log never holds document text (the assets record
counts and chunk ids only). It is refused, erasing nothing, when an id is not stored or a filter
matches nothing. The landing zone is the user's: when it still holds a document, the report says so,
since the next run of that day would bring it back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pipeline.errors import ConfigError, DocvecError
from pipeline.ingest.landing import Landing
from pipeline.storage import erasure
from pipeline.storage.erasure import Removed, StoredDocument

_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ForgetReport:
    """What ``forget`` erased (or, with ``dry_run``, would erase)."""
    doc_ids: list[str]
    filters: dict[str, str]
    versions: list[StoredDocument]
    removed: Removed
    batch_files: list[Path]
    still_in_landing: list[str]
    landing_note: str | None = None
    dry_run: bool = False
    vacuumed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """What went, per kind, for a terminal."""
        verb = "would erase" if self.dry_run else "erased"
        chosen = f" (filter {', '.join(f'{k}={v}' for k, v in self.filters.items())})" if self.filters else ""
        r = self.removed
        models = ", ".join(f"model {m}: {n}" for m, n in sorted(r.chunks_per_model.items())) or "none"
        lines = [f"{verb} {len(self.doc_ids)} documents{chosen}: {', '.join(self.doc_ids)}",
                 f"  chunks:          {r.chunks:,} ({models}) on {len(r.days)} days",
                 f"  documents rows:  {r.documents:,}",
                 f"  dead letters:    {r.dead_letters:,}"]
        if not self.dry_run:
            lines += [f"  term statistics: {r.term_stats:,} rows decremented",
                      f"  day records:     {r.ingest_days:,} (their next run reads the day's files again)"]
        if r.tombstones:
            lines.append(f"  tombstones:      {r.tombstones:,}")
        lines.append(f"  batch files:     {len(self.batch_files)}"
                     + "".join(f"\n    {path}" for path in self.batch_files))
        if not self.dry_run:
            lines.append(f"done in {self.seconds:.3f} s; recorded in the erasures table (ids and counts, no text)")
        if self.still_in_landing:
            lines.append("warning: the landing zone still holds " + ", ".join(self.still_in_landing)
                         + ": the next run of that day brings it back; delete it at the source too")
        elif self.landing_note:
            lines.append(self.landing_note)
        return lines


def forget(conn: psycopg.Connection, doc_ids: Sequence[str] = (), filters: Mapping[str, str] | None = None, *,
           batches_dir: Path | None = None, landing: Landing | None = None, dry_run: bool = False,
           vacuum: bool = True) -> ForgetReport:
    """Erase every version of the documents ``doc_ids``, or of those matching ``filters``, from the
    store, and their day batches below ``batches_dir``; check ``landing`` for copies still there.
    Raises ``ConfigError`` (nothing erased) when neither or both are given, an id is not stored, or the
    filter matches nothing. ``conn`` is autocommit (``connections.connect``'s default): the erasure is
    one transaction of its own, and VACUUM runs after it."""
    started = time.perf_counter()
    ids = _chosen(conn, doc_ids, dict(filters or {}))
    found = erasure.stored_versions(conn, ids)
    missing = sorted(set(ids) - {f.doc_id for f in found})
    if missing:
        raise ConfigError(
            f"no document {', '.join(repr(m) for m in missing)} is stored (ids are paths below the day folder, "
            "e.g. runbooks/err-4471.md, as `docvec search` shows them); nothing was erased")
    if dry_run:
        removed = erasure.count(conn, ids, found)
    else:
        found, removed = erasure.erase(conn, ids, filters)
    files = _batch_files(batches_dir, ids, delete=not dry_run)
    vacuumed = erasure.vacuum(conn, removed.days) if vacuum and not dry_run else []
    held, note = _still_in_landing(landing, ids)
    return ForgetReport(doc_ids=ids, filters=dict(filters or {}), versions=found, removed=removed,
                        batch_files=files, still_in_landing=held, landing_note=note, dry_run=dry_run,
                        vacuumed=vacuumed, seconds=time.perf_counter() - started)


def _chosen(conn: psycopg.Connection, doc_ids: Sequence[str], filters: dict[str, str]) -> list[str]:
    ids = sorted({d.strip() for d in doc_ids if d.strip()})
    if bool(ids) == bool(filters):
        raise ConfigError("forget takes document ids or --filter KEY=VALUE pairs (one of the two), "
                          "e.g. `docvec forget runbooks/err-4471.md` or `docvec forget --filter customer=acme`")
    if filters:
        ids = erasure.matching_ids(conn, filters)
        if not ids:
            shown = ", ".join(f"{k}={v}" for k, v in filters.items())
            raise ConfigError(f"no stored document's metadata matches {shown}; nothing was erased "
                              "(the filter matches front matter and chunk metadata exactly, as search's --filter)")
    return ids


def _batch_files(root: Path | None, doc_ids: Sequence[str], *, delete: bool) -> list[Path]:
    """Files below ``root`` (the batch IO manager's folder) naming any of the documents: the day
    batches the steps handed each other hold every chunk's document id beside its text. Deleted
    unless ``delete`` is false; a later run rebuilds a step's batch from the step before it."""
    if root is None or not root.is_dir():
        return []
    needles = [d.encode() for d in doc_ids]
    hits = [path for path in sorted(root.rglob("*")) if path.is_file() and _holds(path, needles)]
    if delete:
        for path in hits:
            path.unlink(missing_ok=True)
    return hits


def _holds(path: Path, needles: Iterable[bytes]) -> bool:
    wanted = list(needles)
    overlap = max(len(n) for n in wanted) - 1
    tail = b""
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            window = tail + block
            if any(n in window for n in wanted):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def _still_in_landing(landing: Landing | None, doc_ids: Sequence[str]) -> tuple[list[str], str | None]:
    """Where the landing zone still holds any of the documents (day folder/path)."""
    if landing is None:
        return [], "the landing zone was not checked"
    wanted = set(doc_ids)
    try:
        return [landing.source_uri(day, f) for day in landing.holding_days() for f in landing.files(day)
                if f.rel in wanted], None
    except (DocvecError, OSError) as exc:
        return [], f"warning: could not check the landing zone {landing.url} for copies ({exc})"
