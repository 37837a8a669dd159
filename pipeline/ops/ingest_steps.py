"""The first three ingest steps over a run's days, and what each did: reading (the one decision of
what each day needs: ``planning.plan_day``), chunking and embedding. Each step takes the previous
one's per-day batches ({"YYYY-MM-DD": batch}) and returns its own in a report."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import psycopg

from pipeline.ingest import collection, planning, stages
from pipeline.ingest.collection import CollectionOptions
from pipeline.ingest.embedding import Embedder, ProgressCallback
from pipeline.ingest.landing import Landing
from pipeline.ingest.planning import DayPlan, ReadOptions, Recipe
from pipeline.ops.reports import LogLines, Metadata, rate
from pipeline.records import DayChunks, DayEmbeddings, DeadLetter
from pipeline.storage import retention

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class ReadReport:
    """Each day's plan (``plan_day``), and where the days were read from. ``absent``: the run's days
    whose folder does not exist and that hold nothing (nothing landed): left out of ``plans``."""
    plans: dict[str, DayPlan]
    landing: str
    absent: tuple[str, ...] = ()
    collection: bool = False  # the landing is a collection: each plan is a snapshot

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The files of the run's days that could not be ingested."""
        return [letter for plan in self.plans.values() for letter in plan.read.dead_letters]

    def lines(self) -> list[str]:
        """One line per day, for the run's log."""
        return [_read_line(plan) for plan in self.plans.values()] + [
            f"{day}: no day folder {self.landing.rstrip('/')}/{day}/ and nothing stored for the day: nothing landed, "
            "nothing to do" for day in self.absent]

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        plans = list(self.plans.values())
        return {
            "days": len(plans),
            "days_not_read": sum(not plan.files_read for plan in plans),
            "days_unchanged": sum(plan.unchanged for plan in plans),
            "days_absent": len(self.absent),
            "files": sum(plan.read.files_seen for plan in plans),
            "files_parsed": sum(plan.files_parsed for plan in plans),
            "documents": sum(len(plan.read.documents) for plan in plans),
            "documents_kept": sum(len(plan.read.kept) for plan in plans),
            "deletions_read": sum(len(plan.read.deleted) for plan in plans if plan.changes is None),  # manifest ids
            **(_changes_metadata(plans) if self.collection else {}),
            "bytes": sum(d.bytes for plan in plans for d in plan.read.documents),
            "dead_letters": len(self.dead_letters),
            "seconds": round(sum(plan.read.seconds for plan in plans), 3),
            **_ocr_metadata(plans),
            "landing": self.landing,
        }


def _ocr_metadata(plans: Sequence[DayPlan]) -> Metadata:
    """What OCR cost the days' documents read (pages recognised, seconds inside the parse workers)."""
    read = [d.metadata for plan in plans for d in plan.read.documents]
    return {"ocr_pages": sum(int(m.get("ocr_pages", 0)) for m in read),
            "ocr_seconds": round(sum(float(m.get("ocr_seconds", 0.0)) for m in read), 3)}


def _changes_metadata(plans: Sequence[DayPlan]) -> Metadata:
    """A collection snapshot's documents added, changed, deleted and kept as they were (all 0 when its
    listing equals the day's last one)."""
    changes = [plan.changes for plan in plans if plan.changes is not None]
    return {
        "documents_added": sum(len(c.added) for c in changes),
        "documents_changed": sum(len(c.changed) for c in changes),
        "documents_deleted": sum(len(c.deleted) for c in changes),
        "documents_unchanged": sum(c.unchanged for c in changes),
    }


def _read_line(plan: DayPlan) -> str:
    read = plan.read
    if plan.changes is not None:
        c = plan.changes
        verdict = "; the day already holds exactly this" if plan.unchanged else ""
        return (f"{plan.day}: snapshot of the collection: {len(c.added)} documents added, {len(c.changed)} changed, "
                f"{len(c.deleted)} deleted, {c.unchanged} unchanged ({c.restamped} of them hashed again and found the "
                f"same), {len(read.kept)} kept from this day's last run, {len(read.dead_letters)} dead letters{verdict}")
    if not plan.files_read:
        return f"{plan.day}: {read.files_seen} files unchanged since the last load, not read"
    kept = f", {len(read.kept)} unchanged files kept without reading them" if read.kept else ""
    verdict = "; unchanged since the last load" if plan.unchanged else ""
    deleted = f", {len(read.deleted)} deleted by its manifest" if read.deleted else ""
    cost = _ocr_metadata([plan])
    scanned = f", {cost['ocr_pages']} pages OCR'd in {cost['ocr_seconds']:.1f} s" if cost["ocr_pages"] else ""
    return (f"{plan.day}: {len(read.documents)} documents read{kept}{scanned}, {len(read.dead_letters)} dead letters"
            f"{deleted}{verdict}")


def days_to_read(days: Sequence[dt.date], today: dt.date, window_days: int) -> list[dt.date]:
    """The run's days, each checked to be inside the retention window (a ``ConfigError`` naming the
    first that is not: the next retention run would drop it)."""
    for day in days:
        retention.require_within_window(day, today, window_days)
    return list(days)


def read_days(conn: psycopg.Connection, landing: Landing, days: Sequence[dt.date], recipe: Recipe,
              options: ReadOptions, *, force: bool = False,
              snapshot: CollectionOptions | None = None) -> ReadReport:
    """Plan every day, reading what it needs: ``planning.plan_day`` for day folders, and for a
    collection landing one snapshot (``collection.plan_snapshot``, with ``snapshot``'s guards)."""
    if landing.collection:
        plans = collection.plan_days(conn, landing, list(days), recipe, options, snapshot or CollectionOptions(),
                                     force=force)
    else:
        plans = [planning.plan_day(conn, landing, day, recipe, options, force=force) for day in days]
    return ReadReport({plan.day.isoformat(): plan for plan in plans if not plan.absent}, landing.url,
                      tuple(plan.day.isoformat() for plan in plans if plan.absent), landing.collection)


@dataclass(frozen=True)
class ChunkReport:
    """Each day's chunks (nothing for an unchanged day), and the most tokens a chunk may hold."""
    batches: dict[str, DayChunks]
    budget: int

    def lines(self) -> list[str]:
        """One line per day, for the run's log."""
        return [f"{b.day}: unchanged since its last load; nothing to chunk, embed or rewrite" if b.unchanged
                else f"{b.day}: {len(b.chunks)} chunks from {len(b.documents)} documents" for b in self.batches.values()]

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        batches = list(self.batches.values())
        chunks = sum(len(b.chunks) for b in batches)
        tokens = sum(c.token_count for b in batches for c in b.chunks)
        seconds = sum(b.seconds for b in batches)
        return {
            "documents": sum(len(b.documents) for b in batches),
            "days_unchanged": sum(b.unchanged for b in batches),
            "chunks": chunks,
            "tokens": tokens,
            "mean_tokens_per_chunk": round(tokens / chunks, 1) if chunks else 0.0,
            "max_tokens_per_chunk": self.budget,
            "seconds": round(seconds, 3),
            "chunks_per_second": rate(chunks, seconds),
        }


def chunk_days(plans: Mapping[str, DayPlan], tokenizer: Callable[[], Tokenizer]) -> ChunkReport:
    """Chunk every day its plan says to rebuild; ``tokenizer`` (which loads the model) is called only
    when some day must be cut."""
    batches = {key: stages.chunk_day(plan, tokenizer) for key, plan in plans.items()}
    return ChunkReport(batches, max((plan.recipe.chunking.budget for plan in plans.values()), default=0))


@dataclass(frozen=True)
class EmbedReport:
    """Each day's vectors (none for an unchanged day), and the model when it had to be loaded."""
    batches: dict[str, DayEmbeddings]
    model: Embedder | None

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        batches = list(self.batches.values())
        embedded = sum(b.embedded for b in batches)
        seconds = sum(b.seconds for b in batches)
        model, first = self.model, batches[0] if batches else None
        return {
            "chunks": sum(len(b.chunks) for b in batches),
            "embedded": embedded,
            "reused": sum(b.reused for b in batches),
            "seconds": round(seconds, 3),
            "chunks_per_second": rate(embedded, seconds),
            "model": model.info.name if model else (first.model_name if first else "-"),
            "model_revision": model.info.revision if model else (first.model_revision if first else "-"),
            "dimension": model.info.dim if model else (first.dim if first else 0),
            "device": model.device if model else "not loaded: nothing to embed",
            "batch_size": (str(model.batch_size or f"up to {model.tokens_per_batch} padded tokens")
                           if model else "-"),
        }


def embed_days(conn: psycopg.Connection, batches: Mapping[str, DayChunks], model: Callable[[], Embedder],
               log: LogLines) -> EmbedReport:
    """Embed every day that was chunked, reusing stored vectors of content the model embedded before
    and text repeated across the run's days; ``model`` (which loads it) is called only when some day
    has chunks to embed. Progress goes to ``log``."""
    run_vectors: dict[str, np.ndarray] = {}  # text repeated across this run's days is embedded once
    loaded: Embedder | None = None
    embedded: dict[str, DayEmbeddings] = {}
    for key, batch in batches.items():
        if batch.unchanged:
            embedded[key] = stages.unchanged_embeddings(batch)
            continue
        empty = stages.nothing_to_embed(batch, conn)
        if empty is not None:
            embedded[key] = empty
            continue
        loaded = loaded or model()
        embedded[key] = stages.embed_chunks(batch, loaded, conn, progress=_progress(log, key), run_vectors=run_vectors)
    return EmbedReport(embedded, loaded)


def _progress(log: LogLines, key: str) -> ProgressCallback:
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        per_second = done / elapsed if elapsed else 0.0
        eta = (total - done) / per_second if per_second else 0.0
        log(f"{key}: embedded {done}/{total} chunks, {per_second:.1f} chunks/s, ETA {eta:.0f} s")
    return report
