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

A past day cannot be read again (the collection is only there as it is now), with one exception: a
new embedding model's shadow build, which embeds the past day's chunks as they are stored
(``plan_restore``), so a collection changes models like day folders do.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace

import psycopg

from pipeline.errors import BadInputError, ConfigError
from pipeline.ingest import deletions, permissions, planning
from pipeline.ingest.landing import Landing, LandingFile
from pipeline.ingest.permissions import Policy
from pipeline.ingest.planning import DayPlan, ReadOptions, Recipe
from pipeline.records import CollectionChanges, DayDocuments, DeadLetter, KeptDocument, SourceState
from pipeline.storage import days, dead_letters, ingest_days, model_lifecycle, model_registry, tombstones
from pipeline.storage.days import LiveVersion

# Below this many stored documents a large share deleted is ordinary (a small collection's churn).
GUARDED_FROM = 10


@dataclass(frozen=True)
class CollectionOptions:
    """How a collection is snapshotted: ``max_deleted_share`` of its stored documents (of at least
    ``GUARDED_FROM``) may go in one run; more is refused as a sign of a broken listing, not applied."""
    max_deleted_share: float = 0.5


def plan_days(conn: psycopg.Connection, landing: Landing, days_of_run: list[dt.date], recipe: Recipe,
              options: ReadOptions, settings: CollectionOptions, *, force: bool = False) -> list[DayPlan]:
    """The run's plans: past days (before the latest stored one) restored for the recipe's model from
    their stored chunks, then at most one snapshot of the collection (the run's last day)."""
    latest = ingest_days.latest_day(conn)
    past = [day for day in days_of_run if latest is not None and day < latest]
    require_one_day([day for day in days_of_run if day not in past])
    plans = [plan_restore(conn, day, recipe) for day in past]
    return plans + [plan_snapshot(conn, landing, day, recipe, options, settings, force=force)
                    for day in days_of_run if day not in past]


def plan_restore(conn: psycopg.Connection, day: dt.date, recipe: Recipe) -> DayPlan:
    """A past day of the collection for ``recipe``'s model when it has no vectors of it yet (a shadow
    build): the chunks another model stored for the day, to embed as they are, with the day's versions,
    tombstones and open dead letters kept. Unchanged once built; any other rebuild of a past day (new
    chunking settings for the same model) is refused: its files are gone."""
    model_lifecycle.require_buildable(conn, recipe.model.name, recipe.model.revision)
    stored = ingest_days.stored_source(conn, day)
    own = model_registry.lookup(conn, recipe.model.name, recipe.model.revision)
    recorded = ingest_days.recorded_fingerprints(conn, day, own.id) if own is not None else None
    if recorded is not None and recorded.fingerprint == recipe.fingerprint(recorded.content_fingerprint):
        read = DayDocuments(day=day, documents=[], dead_letters=[], files_seen=0, seconds=0.0,
                            source=stored or SourceState())
        return DayPlan(read, recipe, recorded.fingerprint, unchanged=True, files_read=0, changes=CollectionChanges())
    donor = next((m for m in (model_registry.serving(conn), *model_registry.all_models(conn))
                  if m is not None and ingest_days.recorded_fingerprints(conn, day, m.id) is not None), None)
    if recorded is not None or donor is None:  # the same model with other settings: its files are needed
        raise _past_day(day, ingest_days.latest_day(conn) or day)
    kept = tuple(days.versions_on(conn, day))
    deleted = tuple(tombstones.on_day(conn, day))
    letters = [DeadLetter(d["source_uri"], day, d["stage"], d["error"], d["detail"] or "")
               for d in dead_letters.open_letters(conn, [day])]
    source = stored or SourceState("", planning.content_fingerprint([], letters, kept, deleted))
    read = DayDocuments(day=day, documents=[], dead_letters=letters, files_seen=0, seconds=0.0, source=source,
                        kept=kept, deleted=deleted)
    return DayPlan(read, recipe, recipe.fingerprint(source.content_fingerprint), unchanged=False, files_read=0,
                   changes=CollectionChanges(unchanged=len(kept)), restored=tuple(days.stored_chunks(conn, day, donor.id)))


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
        raise _past_day(day, latest)


def _past_day(day: dt.date, latest: dt.date) -> ConfigError:
    return ConfigError(
        f"{day} is before {latest}, the latest day this store holds: a collection can only be read as it is "
        f"now, so a run of a past day (a backfill) would file today's snapshot under {day}. Run {latest} or a "
        "later day; to search the collection as it was on a past day inside the retention window, search "
        f"with as_of={day} (docvec search --as-of {day}). (A new embedding model's shadow build is the one run "
        "that may include past days: it embeds their stored chunks.)")


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
    sidecar = permissions.find_sidecar(landing, day)  # the collection root's readers: part of its listing
    signature = deletions.listed_signature(files, None, sidecar, options.permissions.listing_entry())
    if stored is not None and stored.signature == signature and not force:
        fingerprint = recipe.fingerprint(stored.content_fingerprint)
        if ingest_days.has_fingerprint(conn, day, fingerprint):
            read = DayDocuments(day=day, documents=[], dead_letters=[], files_seen=len(files),
                                seconds=time.perf_counter() - started, source=stored)
            return DayPlan(read, recipe, fingerprint, unchanged=True, files_read=0,
                           changes=CollectionChanges(unchanged=len(files)))
    on_day = days.stored_documents(conn, day) if not force and planning.may_keep(conn, day, recipe) else {}
    policy = Policy(options.permissions, permissions.read_sidecar(landing, day, sidecar),  # before any write
                    {**{doc_id: v.declared for doc_id, v in live.items() if v.declared is not None},
                     **(days.declared_readers(conn, day) if on_day else {})})
    listed = {file.rel for file in files}
    deleted = tuple(sorted(doc_id for doc_id in live if doc_id not in listed))
    _refuse_mass_deletion(landing, live, deleted, settings)
    unchanged = [] if force else [f for f in files if f.rel not in on_day and f.rel in live
                                  and landing.same_content(f, live[f.rel].stamp)]
    skipped = {f.rel for f in unchanged}
    to_consider = [f for f in files if f.rel not in skipped]
    known = {**{doc_id: (v.stamp, v.content_sha256) for doc_id, v in live.items()}, **on_day}
    read = planning.read_files(landing, day, to_consider, options, None if force else known, policy=policy)
    # Read files whose bytes equal their version stored before the day stay as they are: no row on the day.
    same_as_live = [k for k in read.kept if k.doc_id not in on_day]
    days.restamp(conn, [(k.doc_id, live[k.doc_id].day, k.stamp) for k in same_as_live if k.stamp])
    letters = _update_readers(conn, landing, day, policy, live, unchanged, same_as_live)
    kept = tuple(k for k in read.kept if k.doc_id in on_day)
    read = _snapshot_read(replace(read, dead_letters=[*read.dead_letters, *letters]), kept, deleted, signature,
                          time.perf_counter() - started)
    fingerprint = recipe.fingerprint(read.source.content_fingerprint)
    changes = CollectionChanges(
        added=tuple(sorted(d.doc_id for d in read.documents if d.doc_id not in live)),
        changed=tuple(sorted(d.doc_id for d in read.documents if d.doc_id in live)),
        deleted=deleted, unchanged=len(unchanged) + len(same_as_live), restamped=len(same_as_live))
    return DayPlan(read, recipe, fingerprint, unchanged=not force and ingest_days.has_fingerprint(conn, day, fingerprint),
                   files_read=len(to_consider) - sum(not k.stamp for k in kept), changes=changes)


def _update_readers(conn: psycopg.Connection, landing: Landing, day: dt.date, policy: Policy,
                    live: dict[str, LiveVersion], unchanged: list[LandingFile],
                    same_as_live: list[KeptDocument]) -> list[DeadLetter]:
    """The unchanged documents of the snapshot (their live version stored on an earlier day) whose
    readers changed (the sidecar or the default did) get them on every version, unparsed; one whose
    stored metadata declares invalid readers keeps its stored readers and is a dead letter."""
    changed: dict[str, tuple[str, ...]] = {k.doc_id: k.readers for k in same_as_live
                                           if k.readers is not None and k.readers != live[k.doc_id].readers}
    letters = []
    for file in unchanged:
        version = live[file.rel]
        try:
            readers = policy.readers(file.rel, landing.source_uri(day, file), version.declared)
        except BadInputError as exc:
            letters.append(DeadLetter(exc.source, day, "read", exc.reason, exc.fix))
            continue
        if readers != version.readers:
            changed[file.rel] = readers
    days.set_readers(conn, changed)
    return letters


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

