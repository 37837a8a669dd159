"""The one decision about an ingest day: is what is stored already what a rebuild would make?

A day's stored chunks depend on its files (their contents and failures) and on a ``Recipe`` (the
chunking settings and the model). ``plan_day`` decides, once per day and only here, whether the stored
day stands (``unchanged``: nothing to chunk, embed or rewrite) or what a rebuild starts from, opening no
file it need not:

- the listing's signature (names and stamps) equals the stored day's, and the stored contents under
  this recipe give the stored fingerprint: unchanged, and no file is opened;
- otherwise the files are read, each once (only those whose stamp changed, when this model's stored
  chunks of the others were cut with this recipe), and the day is still unchanged when its contents
  under this recipe give the stored fingerprint (files touched or copied, the same bytes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from pipeline.errors import ConfigError
from pipeline.ingest import deletions, permissions, reading
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.context import HEADER_TOKENS
from pipeline.ingest.deletions import Manifest
from pipeline.ingest.landing import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_PATTERNS,
    Landing,
    LandingFile,
)
from pipeline.ingest.parse_pool import ParseLimits
from pipeline.ingest.permissions import PermissionSettings, Policy
from pipeline.records import (
    ChunkRecord,
    CollectionChanges,
    DayDocuments,
    DeadLetter,
    KeptDocument,
    ModelInfo,
    SourceDocument,
    SourceState,
)
from pipeline.storage import days, ingest_days, model_lifecycle, model_registry

# What a day's stored BM25 entries and list priors were computed with (pipeline/lexical): bump it when
# tokenizing, weighting or the prior change, and every day is rebuilt on its next run (its vectors are
# reused: the text the model sees is the same).
LEXICAL_RECIPE = "bm25-2"  # 2: impact markers (pipeline/lexical/bm25.py)


@dataclass(frozen=True)
class ReadOptions:
    """Which files of a day folder are read, and the limits each is read under."""
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    limits: ParseLimits | None = None
    permissions: PermissionSettings = field(default_factory=PermissionSettings)  # who reads documents that name no readers


@dataclass(frozen=True)
class Recipe:
    """Everything a day's stored chunks depend on besides its files: how they are cut (``chunking``,
    ``max_chunks_per_document``; with a contextual header when ``contextual``) and which model embeds
    them. Equal recipes over equal contents make equal days."""
    chunking: ChunkingConfig
    model: ModelInfo
    max_chunks_per_document: int | None = None
    contextual: bool = True

    @classmethod
    def of(cls, model: ModelInfo, *, contextual: bool = True, overlap_tokens: int = 32, max_tokens: int | None = None,
           max_chunks_per_document: int | None = None) -> Recipe:
        """The recipe for ``model`` with these settings: each chunk leaves room for its header when
        ``contextual`` (the header is embedded with it, within the model's limit)."""
        chunking = ChunkingConfig(max_seq_length=model.max_seq_length, max_tokens=max_tokens,
                                  overlap_tokens=overlap_tokens, reserved_tokens=HEADER_TOKENS if contextual else 0)
        return cls(chunking, model, max_chunks_per_document, contextual)

    def fingerprint(self, content_fingerprint: str) -> str:
        """The fingerprint of a day whose files give ``content_fingerprint``, built with this recipe.
        (The model's revision names whether chunks carry headers, so ``contextual`` is not repeated.)"""
        payload = {
            "content": content_fingerprint,
            "chunking": [self.chunking.budget, self.chunking.overlap_tokens, self.max_chunks_per_document],
            "model": [self.model.name, self.model.revision, self.model.normalized],
            "lexical": LEXICAL_RECIPE,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class DayPlan:
    """One ingest day as ``plan_day`` decided it: ``unchanged`` (the stored day stands; ``read`` holds
    no document to use) or to be rebuilt from ``read`` (its documents, its dead letters, and the kept
    documents whose stored chunks stay) with ``recipe``, into a day recorded under ``fingerprint``."""
    read: DayDocuments
    recipe: Recipe
    fingerprint: str
    unchanged: bool
    files_read: int  # files opened to decide: 0 when the listing alone showed the day unchanged
    # The day's folder does not exist and nothing is stored for it: nothing landed, nothing to do.
    absent: bool = False
    # A collection's snapshot: what changed against the collection as stored before the day (None for a
    # day folder, and for a snapshot whose listing equals the day's last one).
    changes: CollectionChanges | None = None
    # A collection's past day built for another model from the chunks stored for it (its files are gone):
    # the chunks to embed, as stored; None for a day read from its files.
    restored: tuple[ChunkRecord, ...] | None = None

    @property
    def day(self) -> dt.date:
        return self.read.day

    @property
    def files_parsed(self) -> int:
        """Files opened and parsed: those opened less those whose bytes hashed to the stored ones."""
        restamped = self.changes.restamped if self.changes else 0  # a collection's files found as stored
        return self.files_read - sum(bool(k.stamp) for k in self.read.kept) - restamped


def content_fingerprint(documents: Sequence[SourceDocument], dead_letters: Sequence[DeadLetter],
                        kept: Sequence[KeptDocument] = (), deleted: Sequence[str] = ()) -> str:
    """The day's file contents, failures and deletions (its manifest's ids), order-independent (kept
    documents count by their stored content hash, so keeping or re-reading an unchanged file gives the
    same fingerprint; a day without deletions keeps the fingerprint it always had). Readers count only
    when some document's are not ``*``, so a store without permissions keeps its fingerprints."""
    payload: dict[str, Sequence[object]] = {
        "documents": sorted([(d.doc_id, d.content_sha256) for d in documents]
                            + [(k.doc_id, k.content_sha256) for k in kept]),
        "dead_letters": sorted((d.source_uri, d.stage, d.error) for d in dead_letters),
    }
    if deleted:
        payload["deleted"] = sorted(deleted)
    readers = sorted([(d.doc_id, list(d.readers)) for d in documents if d.readers != permissions.EVERYONE]
                     + [(k.doc_id, list(k.readers)) for k in kept if k.readers not in (None, permissions.EVERYONE)])
    if readers:
        payload["readers"] = readers
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_files(landing: Landing, day: dt.date, files: Sequence[LandingFile], options: ReadOptions = ReadOptions(),
               stored: Mapping[str, tuple[str, str]] | None = None, manifest: Manifest | None = None,
               policy: Policy | None = None) -> DayDocuments:
    """Read the listed ``files`` of the day, except those ``stored`` ({doc_id: (stamp, content hash)})
    with the same stamp: those are kept, not read; and except those the day's ``manifest`` deletes.
    With a ``policy``, documents read and kept get their readers (kept ones from their stored metadata,
    unparsed); without one, read documents are everyone's and kept ones keep their stored readers."""
    started = time.perf_counter()
    manifest = manifest or Manifest()
    to_read, contradicted = deletions.contradicted(landing, day, files, manifest)
    known = stored or {}
    kept = tuple(KeptDocument(f.rel, known[f.rel][1]) for f in to_read
                 if f.rel in known and landing.same_content(f, known[f.rel][0]))
    kept_ids = {k.doc_id for k in kept}
    # A file whose stamp changed is hashed (streamed, within max_file_bytes) before it is parsed: the
    # same bytes as stored (cp -r, aws s3 sync, rsync without -a) keep it without parsing.
    result = reading.read_day(landing, day, [f for f in to_read if f.rel not in kept_ids], options.max_file_bytes,
                              options.limits, {doc_id: sha for doc_id, (_, sha) in known.items() if doc_id not in kept_ids})
    kept = (*kept, *result.same_bytes)
    documents, refused = result.documents, list[DeadLetter]()
    if policy is not None:
        documents, kept, refused = policy.apply(day, documents, kept, {f.rel: landing.source_uri(day, f) for f in files})
    dead = [*result.dead_letters, *refused, *manifest.dead_letters, *contradicted]
    controls = (policy.sidecar.file, policy.settings.listing_entry()) if policy is not None else ()
    return DayDocuments(day=day, documents=documents, dead_letters=dead,
                        files_seen=len(files), seconds=time.perf_counter() - started, kept=kept, deleted=manifest.ids,
                        source=SourceState(deletions.listed_signature(files, manifest.file, *controls),
                                           content_fingerprint(documents, dead, kept, manifest.ids)))


def plan_day(conn: psycopg.Connection, landing: Landing, day: dt.date, recipe: Recipe,
             options: ReadOptions = ReadOptions(), *, force: bool = False) -> DayPlan:
    """Decide what the day needs (see the module's docstring); ``force`` rebuilds it from every file
    whatever is stored."""
    # Refused before anything is skipped as unchanged: a rolled-back model's days would be invisible
    # to search, so a run configured with it fails whether or not it would embed anything.
    model_lifecycle.require_buildable(conn, recipe.model.name, recipe.model.revision)
    started = time.perf_counter()
    # Listed before reading, so a file changed while it is being read makes the next run read it again.
    files = landing.files(day, options.patterns)
    if not files and not landing.has_day(day):
        return _absent_day(conn, landing, day, recipe)
    manifest = deletions.find(landing, day)  # the day's deletions: its listing covers them too
    sidecar = permissions.find_sidecar(landing, day)  # who reads the day's documents: so does its sidecar
    stored = ingest_days.stored_source(conn, day)
    listed_alike = stored is not None and stored.signature == deletions.listed_signature(
        files, manifest, sidecar, options.permissions.listing_entry())
    if stored is not None and listed_alike and not force:
        fingerprint = recipe.fingerprint(stored.content_fingerprint)
        if ingest_days.has_fingerprint(conn, day, fingerprint):
            read = DayDocuments(day=day, documents=[], dead_letters=[], files_seen=len(files),
                                seconds=time.perf_counter() - started, source=stored)
            return DayPlan(read, recipe, fingerprint, unchanged=True, files_read=0)
    # Listed alike but built otherwise (settings, model): every file is read, as for a forced rebuild.
    keep = not force and not listed_alike and may_keep(conn, day, recipe)
    policy = Policy(options.permissions, permissions.read_sidecar(landing, day, sidecar),
                    days.declared_readers(conn, day) if keep else {})
    read = read_files(landing, day, files, options, days.stored_documents(conn, day) if keep else None,
                      deletions.read(landing, day, manifest), policy)
    fingerprint = recipe.fingerprint(read.source.content_fingerprint)
    unchanged = not force and ingest_days.has_fingerprint(conn, day, fingerprint)
    return DayPlan(read, recipe, fingerprint, unchanged,
                   files_read=len(files) - sum(not k.stamp for k in read.kept) + (manifest is not None))


def _absent_day(conn: psycopg.Connection, landing: Landing, day: dt.date, recipe: Recipe) -> DayPlan:
    """A day whose folder does not exist: nothing to do when nothing is stored for it (a schedule tick
    on a day nothing landed); refused when the day holds stored documents, which an empty day would
    wipe: a typo in landing_dir, a prefix without day folders or a missing mount is not an empty day."""
    if day in ingest_days.stored_days(conn):
        collection = (f" {landing.url} holds files but no day folders: a folder without day folders is a "
                      "collection; to mirror it as one, set the source resource's mode to collection "
                      "(DOCVEC_SOURCE_MODE=collection)."
                      if landing.holds_undated_files() else "")
        raise ConfigError(
            f"{day}: the day folder {landing.day_url(day)} does not exist, and {day} holds stored documents that a "
            f"run would remove from search. docvec reads one folder per day: {landing.url.rstrip('/')}/YYYY-MM-DD/."
            f"{collection} Fix the source's landing_dir (or DOCVEC_LANDING_DIR) or restore the folder; to empty "
            "the day on purpose, land it as an empty folder (in object storage: a YYYY-MM-DD/.keep object).")
    read = DayDocuments(day=day, documents=[], dead_letters=[], files_seen=0, seconds=0.0)
    return DayPlan(read, recipe, "", unchanged=False, files_read=0, absent=True)


def may_keep(conn: psycopg.Connection, day: dt.date, recipe: Recipe) -> bool:
    """Stored chunks of unchanged files may stay only if this model made them with this recipe."""
    stored = model_registry.lookup(conn, recipe.model.name, recipe.model.revision)
    recorded = ingest_days.recorded_fingerprints(conn, day, stored.id) if stored else None
    return recorded is not None and recorded.fingerprint == recipe.fingerprint(recorded.content_fingerprint)
