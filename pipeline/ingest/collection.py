"""A living collection's snapshot: the one decision of what a run of day D does with a folder (or
bucket prefix) that is edited in place rather than landed day by day.

The run lists the collection once and compares each file with the collection as stored before D (each
document's live version: ``days.live_versions``) and with what D itself already holds (a rerun of D):

- a file whose listing stamp equals its stored version's is unchanged and never opened;
- a file whose stamp moved is hashed first: the same bytes keep the stored version (its new stamp is
  recorded, so the next listing alone shows it unchanged); other bytes are parsed, and become D's new
  version of the document (``added`` or ``changed``);
- a document stored before D that the listing no longer holds is ``deleted``: a tombstone on D hides it;
- a file that cannot be read becomes a dead letter and its stored version stays searchable.

So D's partition holds only what changed on D, search shows each document's latest version, and a
rerun of D takes a new snapshot and rebuilds D from it. A listing that fails, an empty or missing
collection, and a snapshot that would delete most of it are refused before anything is decided.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace

import psycopg

from pipeline.errors import ConfigError
from pipeline.ingest import deletions, planning
from pipeline.ingest.landing import Landing
from pipeline.ingest.planning import DayPlan, ReadOptions, Recipe
from pipeline.records import CollectionChanges, DayDocuments, KeptDocument, SourceState
from pipeline.storage import days, ingest_days, model_lifecycle
from pipeline.storage.days import LiveVersion

# Below this many stored documents a large share deleted is ordinary (a small collection's churn).
GUARDED_FROM = 10


@dataclass(frozen=True)
class CollectionOptions:
    """How a collection is snapshotted: ``max_deleted_share`` of its stored documents (of at least
    ``GUARDED_FROM``) may go in one run; more is refused as a sign of a broken listing, not applied."""
    max_deleted_share: float = 0.5


def require_one_day(days_of_run: list[dt.date]) -> None:
    """A collection run snapshots the collection once, as it is now: a range of days means nothing."""
    if len(days_of_run) > 1:
        raise ConfigError(
            f"a collection is read as it is now, so a run takes one snapshot for one day; this run asks for "
            f"{len(days_of_run)} days ({days_of_run[0]}..{days_of_run[-1]}). Run today's partition; to search the "
            "collection as it was on an earlier day, search with as_of (docvec search --as-of).")


def require_latest(conn: psycopg.Connection, day: dt.date) -> None:
    """A snapshot is taken now: it can be the latest stored day's again (a rerun) or a later day's, never
    an earlier day's, whose collection is gone (and whose later days' snapshots would then disagree)."""
    latest = ingest_days.latest_day(conn)
    if latest is not None and day < latest:
        raise ConfigError(
            f"{day} is before {latest}, the latest day this store holds: a collection can only be read as it is "
            f"now, so a run of a past day (a backfill) would file today's snapshot under {day}. Run {latest} or a "
            "later day; to search the collection as it was on a past day inside the retention window, search "
            f"with as_of={day} (docvec search --as-of {day}).")


def plan_snapshot(conn: psycopg.Connection, landing: Landing, day: dt.date, recipe: Recipe,
                  options: ReadOptions, settings: CollectionOptions,
                  *, force: bool = False) -> DayPlan:
    """Decide what the snapshot of ``day`` changes (see the module's docstring), opening only files
    whose stamps moved; ``force`` re-reads every file whatever is stored."""
    model_lifecycle.require_buildable(conn, recipe.model.name, recipe.model.revision)
    require_latest(conn, day)
    started = time.perf_counter()
    files = landing.files(day, options.patterns)  # one listing; a failed one raises, never reads as empty
    live = days.live_versions(conn, day)
    if not files:
        _refuse_empty(landing, options, live)
    stored = ingest_days.stored_source(conn, day)
    signature = deletions.listed_signature(files, None)
    if stored is not None and stored.signature == signature and not force:
        fingerprint = recipe.fingerprint(stored.content_fingerprint)
        if ingest_days.has_fingerprint(conn, day, fingerprint):
            read = DayDocuments(day=day, documents=[], dead_letters=[], files_seen=len(files),
                                seconds=time.perf_counter() - started, source=stored)
            return DayPlan(read, recipe, fingerprint, unchanged=True, files_read=0,
                           changes=CollectionChanges(unchanged=len(files)))
    on_day = days.stored_documents(conn, day) if not force and planning.may_keep(conn, day, recipe) else {}
    listed = {file.rel for file in files}
    deleted = tuple(sorted(doc_id for doc_id in live if doc_id not in listed))
    _refuse_mass_deletion(landing, live, deleted, settings)
    unchanged = [] if force else [f for f in files if f.rel not in on_day and f.rel in live
                                  and landing.same_content(f, live[f.rel].stamp)]
    skipped = {f.rel for f in unchanged}
    to_consider = [f for f in files if f.rel not in skipped]
    known = {**{doc_id: (v.stamp, v.content_sha256) for doc_id, v in live.items()}, **on_day}
    read = planning.read_files(landing, day, to_consider, options, None if force else known)
    # Read files whose bytes equal their version stored before the day stay as they are: no row on the day.
    same_as_live = [k for k in read.kept if k.doc_id not in on_day]
    days.restamp(conn, [(k.doc_id, live[k.doc_id].day, k.stamp) for k in same_as_live if k.stamp])
    kept = tuple(k for k in read.kept if k.doc_id in on_day)
    read = _snapshot_read(read, kept, deleted, signature, time.perf_counter() - started)
    fingerprint = recipe.fingerprint(read.source.content_fingerprint)
    changes = CollectionChanges(
        added=tuple(sorted(d.doc_id for d in read.documents if d.doc_id not in live)),
        changed=tuple(sorted(d.doc_id for d in read.documents if d.doc_id in live)),
        deleted=deleted, unchanged=len(unchanged) + len(same_as_live), restamped=len(same_as_live))
    return DayPlan(read, recipe, fingerprint, unchanged=not force and ingest_days.has_fingerprint(conn, day, fingerprint),
                   files_read=len(to_consider) - sum(not k.stamp for k in kept), changes=changes)


def _snapshot_read(read: DayDocuments, kept: tuple[KeptDocument, ...], deleted: tuple[str, ...], signature: str,
                   seconds: float) -> DayDocuments:
    """The day's read as the snapshot stores it: its new versions, the versions it already held
    (``kept``), its deletions, and a fingerprint of exactly those."""
    content = planning.content_fingerprint(read.documents, read.dead_letters, kept, deleted)
    return replace(read, kept=kept, deleted=deleted, seconds=seconds, source=SourceState(signature, content))


def _refuse_empty(landing: Landing, options: ReadOptions, live: dict[str, LiveVersion]) -> None:
    """An empty listing is refused: a collection that does not exist names itself (``has_day``), and
    one that exists but holds nothing is never read as "everything was deleted"."""
    landing.has_day(dt.date.min)  # a collection's "day" is its root: raises when it does not exist
    patterns = ", ".join(options.patterns)
    stored = (f" and {len(live)} stored documents would be deleted from search" if live else
              " and nothing is stored yet: there is nothing to index")
    raise ConfigError(
        f"collection {landing.url} holds no files matching {patterns}{stored}. Check the source's landing_dir and "
        "patterns (and that the folder or bucket is mounted and filled); to remove stored documents on purpose, "
        "use `docvec delete` or `docvec forget`.")


def _refuse_mass_deletion(landing: Landing, live: dict[str, LiveVersion], deleted: tuple[str, ...],
                          settings: CollectionOptions) -> None:
    if len(live) >= GUARDED_FROM and len(deleted) > settings.max_deleted_share * len(live):
        raise ConfigError(
            f"collection {landing.url} no longer lists {len(deleted)} of its {len(live)} stored documents "
            f"({len(deleted) / len(live):.0%}, over the source's max_deleted_share of "
            f"{settings.max_deleted_share:.0%}), e.g. {', '.join(deleted[:5])}. Nothing was deleted: a half-mounted "
            "share or a wrong prefix looks like this. If they really went, raise max_deleted_share for one run.")

