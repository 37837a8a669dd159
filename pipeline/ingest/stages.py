"""One ingest day through each stage: read → chunk → embed (reusing known vectors) → load. What a day
needs at all is decided before, once, by ``planning.plan_day``."""

from __future__ import annotations

import bisect
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from pipeline.errors import ConfigError, StoredStateError
from pipeline.ingest import context, deletions, planning
from pipeline.ingest.chunking import (
    Chunk,
    ChunkingConfig,
    chunk_id,
    chunk_texts,
    sha256_text,
)
from pipeline.ingest.embedding import Embedder, ProgressCallback
from pipeline.ingest.landing import DEFAULT_MAX_FILE_BYTES, DEFAULT_PATTERNS
from pipeline.ingest.landing_zone import LandingRoot, as_landing
from pipeline.ingest.parse_pool import ParseLimits
from pipeline.ingest.planning import DayPlan, ReadOptions
from pipeline.lexical import bm25, listing
from pipeline.records import (
    ChunkRecord,
    DayChunks,
    DayDocuments,
    DayEmbeddings,
    DayLoad,
    DeadLetter,
    LinkBlock,
    SourceDocument,
)
from pipeline.storage import days, model_lifecycle, model_registry

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def read_documents(landing: LandingRoot, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS,
                   max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, limits: ParseLimits | None = None) -> DayDocuments:
    """Read and validate every file of the day, whatever is stored (non-text formats parsed in workers
    under ``limits``). An ingest run reads through ``planning.plan_day`` instead, which reads only what
    changed."""
    landing = as_landing(landing)
    return planning.read_files(landing, day, landing.files(day, patterns),
                               ReadOptions(tuple(patterns), max_file_bytes, limits),
                               manifest=deletions.read(landing, day, deletions.find(landing, day)))


def chunk_day(plan: DayPlan, tokenizer: Callable[[], Tokenizer]) -> DayChunks:
    """The planned day through the chunking step: an unchanged day carries only its fingerprint and
    model (``tokenizer`` is not even asked for); any other day is cut with its recipe."""
    recipe = plan.recipe
    if plan.unchanged:
        return DayChunks(day=plan.day, documents=[], chunks=[], chunk_counts={}, dead_letters=[], seconds=0.0,
                         fingerprint=plan.fingerprint, unchanged=True, source=plan.read.source,
                         contextual=recipe.contextual, model=recipe.model)
    if plan.restored is not None:
        return restored_chunks(plan, tokenizer())
    if not plan.read.documents:  # only kept documents, deletions or dead letters: nothing to cut
        read = plan.read
        return DayChunks(day=plan.day, documents=[], chunks=[], chunk_counts={}, dead_letters=list(read.dead_letters),
                         seconds=0.0, fingerprint=plan.fingerprint, source=read.source, kept=read.kept,
                         contextual=recipe.contextual, model=recipe.model, deleted=read.deleted, changes=plan.changes)
    chunks = chunk_documents(plan.read, tokenizer(), recipe.chunking, recipe.max_chunks_per_document,
                             fingerprint=plan.fingerprint, contextual=recipe.contextual)
    return replace(chunks, model=recipe.model, changes=plan.changes)


def restored_chunks(plan: DayPlan, tokenizer: Tokenizer) -> DayChunks:
    """A past day's stored chunks for another model (``planning.DayPlan.restored``): the same cuts, each
    counted again with this model's tokenizer and refused (``ConfigError``) if it no longer fits the
    model's sequence length; without their headers when this model embeds bare chunks."""
    recipe, read = plan.recipe, plan.read
    chunks = []
    for chunk in plan.restored or ():
        header = chunk.context if recipe.contextual else ""
        embedded = context.embedded_text(header, chunk.text)
        tokens = len(tokenizer.encode(chunk.text, add_special_tokens=False).ids)
        if len(tokenizer.encode(embedded, add_special_tokens=False).ids) > recipe.chunking.model_room:
            raise ConfigError(
                f"{plan.day}: chunk {chunk.chunk_id} of {chunk.doc_id}, cut for the model that stored it, is longer "
                f"than {recipe.model.name} takes ({recipe.chunking.model_room} tokens); a collection's past days "
                "cannot be cut again (their files are gone). Keep the current model, or build the new one into a "
                "fresh store.")
        chunks.append(replace(chunk, context=header, token_count=tokens,
                              content_sha256=sha256_text(embedded) if header else sha256_text(chunk.text)))
    return DayChunks(day=plan.day, documents=[], chunks=chunks, chunk_counts={}, dead_letters=list(read.dead_letters),
                     seconds=0.0, fingerprint=plan.fingerprint, source=read.source, kept=read.kept,
                     contextual=recipe.contextual, model=recipe.model, deleted=read.deleted, changes=plan.changes)


def chunk_documents(batch: DayDocuments, tokenizer: Tokenizer, config: ChunkingConfig,
                    max_chunks_per_document: int | None = None, *, fingerprint: str = "",
                    contextual: bool = True, recipe: context.HeaderRecipe = context.RECIPE) -> DayChunks:
    """Chunk the day's documents. Each chunk gets its metadata (title, section, page), its BM25 entry
    and its list prior; with ``contextual`` also its header, which gets the room the chunk leaves
    (``config.reserved_tokens`` guarantees some). ``contextual`` must match the embedder's
    (``Embedder.contextual``): the model embeds what is cut here. ``recipe`` is the header's (only
    benchmarks/header_recipes.py passes another: a store's revision names the default)."""
    started = time.perf_counter()
    per_document = chunk_texts([d.text for d in batch.documents], tokenizer, config,
                               [[s.start for s in d.sections if s.heading] for d in batch.documents])
    documents, counts = [], {}
    pieces_of: list[tuple[SourceDocument, Chunk, dict[str, Any], str]] = []
    dead = list(batch.dead_letters)
    for document, pieces in zip(batch.documents, per_document, strict=True):
        if max_chunks_per_document is not None and len(pieces) > max_chunks_per_document:
            dead.append(DeadLetter(
                document.source_uri, batch.day, "chunk",
                f"splits into {len(pieces):,} chunks, over the limit of {max_chunks_per_document:,}",
                "split the document or raise max_chunks_per_document"))
            continue
        documents.append(document)
        counts[document.doc_id] = len(pieces)
        for piece in pieces:
            metadata = chunk_metadata(document, piece.char_start, piece.char_end)
            header = context.fit(context.header(metadata.get("title"), metadata.get("section"), recipe), tokenizer,
                                 config.model_room - piece.token_count) if contextual else ""
            pieces_of.append((document, piece, metadata, header))
    lexical = bm25.entries([bm25.chunk_term_counts(piece.text, metadata.get("title"), metadata.get("section"))
                            for _, piece, metadata, _ in pieces_of])
    chunks = [
        ChunkRecord(
            chunk_id=chunk_id(document.doc_id, piece.seq, piece.content_sha256),
            doc_id=document.doc_id, seq=piece.seq, text=piece.text, token_count=piece.token_count,
            content_sha256=sha256_text(context.embedded_text(header, piece.text)) if header else piece.content_sha256,
            metadata=metadata, context=header, lexical=entry,
            prior=listing.prior(link_share(piece.char_start, piece.char_end, document.links)),
        )
        for (document, piece, metadata, header), entry in zip(pieces_of, lexical, strict=True)
    ]
    return DayChunks(day=batch.day, documents=documents, chunks=chunks, chunk_counts=counts,
                     dead_letters=dead, seconds=time.perf_counter() - started, fingerprint=fingerprint,
                     source=batch.source, kept=batch.kept, contextual=contextual, deleted=batch.deleted)


def link_share(start: int, end: int, links: Sequence[LinkBlock]) -> float:
    """The share of ``start``..``end`` of a document that is link text (from its readers' link blocks)."""
    if end <= start or not links:
        return 0.0
    linked = sum(max(0, min(end, block.end) - max(start, block.start)) * block.share for block in links)
    return linked / (end - start)


def chunk_metadata(document: SourceDocument, start: int, end: int) -> dict[str, Any]:
    """The document's metadata plus where the chunk sits: the section it belongs to (its heading path),
    and its page or slide. A chunk opening with the overlap of the section before belongs to the section
    that begins within its first quarter."""
    metadata = dict(document.metadata)
    sections = document.sections
    if not sections:
        return metadata
    starts = [s.start for s in sections]
    index = max(0, bisect.bisect_right(starts, start + (end - start) // 4) - 1)
    section = sections[index]
    if section.path:
        metadata["section"] = section.label
    if section.page is not None:
        metadata["page"] = sections[max(0, bisect.bisect_right(starts, start) - 1)].page
        last_page = sections[max(0, bisect.bisect_left(starts, end) - 1)].page
        if last_page is not None and last_page != metadata["page"]:
            metadata["last_page"] = last_page
    if section.slide is not None:
        metadata["slide"] = section.slide
    return metadata


def unchanged_embeddings(batch: DayChunks) -> DayEmbeddings:
    """An unchanged day through the embedding step: no vectors, only which model its stored ones are of
    (so the model need not even be loaded)."""
    model = batch.model
    if model is None:
        raise StoredStateError(f"{batch.day} was planned unchanged without the model it was built for")
    return DayEmbeddings(
        day=batch.day, documents=[], chunks=[], chunk_counts={}, vectors=np.empty((0, model.dim), dtype=np.float32),
        model_name=model.name, model_revision=model.revision, dim=model.dim, embedded=0, reused=0, dead_letters=[],
        seconds=0.0, device=model.device, fingerprint=batch.fingerprint, unchanged=True, source=batch.source)


def nothing_to_embed(batch: DayChunks, conn: psycopg.Connection) -> DayEmbeddings | None:
    """A changed day without a chunk to embed (only kept documents, deletions or dead letters) through
    the embedding step without loading the model, when the model it is built for is registered; None
    otherwise (the model must be loaded to register it)."""
    model = batch.model
    if batch.chunks or model is None or model_registry.lookup(conn, model.name, model.revision) is None:
        return None
    return DayEmbeddings(
        day=batch.day, documents=[], chunks=[], chunk_counts={}, vectors=np.empty((0, model.dim), dtype=np.float32),
        model_name=model.name, model_revision=model.revision, dim=model.dim, embedded=0, reused=0,
        dead_letters=batch.dead_letters, seconds=0.0, device=model.device, fingerprint=batch.fingerprint,
        source=batch.source, kept=batch.kept, deleted=batch.deleted, changes=batch.changes)


def embed_chunks(batch: DayChunks, embedder: Embedder, conn: psycopg.Connection,
                 progress: ProgressCallback | None = None,
                 run_vectors: dict[str, np.ndarray] | None = None) -> DayEmbeddings:
    """Embed only content this model has never embedded; reuse the stored vector for the rest.

    ``run_vectors`` (content hash → vector) carries what earlier days of the same run embedded but have
    not stored yet, so text repeated across the days of one run is embedded once; it is updated here."""
    started = time.perf_counter()
    if batch.chunks and batch.contextual != embedder.contextual:
        raise ConfigError(f"{batch.day}: chunks were cut {'with' if batch.contextual else 'without'} contextual headers "
                          f"but the embedder records {embedder.info.revision}: chunk with contextual="
                          f"{embedder.contextual}, as the embedder resource's contextual_headers says")
    model_lifecycle.require_buildable(conn, embedder.info.name, embedder.info.revision)
    model_id = model_registry.register(conn, embedder.info).id
    hashes = [c.content_sha256 for c in batch.chunks]
    known = {h: run_vectors[h] for h in hashes if h in run_vectors} if run_vectors else {}
    known.update(days.reusable_vectors(conn, model_id, [h for h in hashes if h not in known]))
    todo: dict[str, list[int]] = {}
    for row, chunk in enumerate(batch.chunks):
        if chunk.content_sha256 not in known:
            todo.setdefault(chunk.content_sha256, []).append(row)
    firsts = [rows[0] for rows in todo.values()]
    fresh = embedder.encode([context.embedded_text(batch.chunks[row].context, batch.chunks[row].text)
                             for row in firsts], progress=progress)
    if len(firsts) == len(batch.chunks):
        vectors = fresh  # all new and distinct, already in chunk order: no second day-sized array
    else:
        vectors = np.empty((len(batch.chunks), embedder.info.dim), dtype=np.float32)
        for row, chunk in enumerate(batch.chunks):
            if chunk.content_sha256 in known:
                vectors[row] = known[chunk.content_sha256]
        for rows, vector in zip(todo.values(), fresh, strict=True):
            vectors[rows] = vector
    if run_vectors is not None:
        for content_sha256, rows in todo.items():
            run_vectors[content_sha256] = vectors[rows[0]]  # a view: the day's array is kept anyway
    return DayEmbeddings(
        day=batch.day, documents=batch.documents, chunks=batch.chunks, chunk_counts=batch.chunk_counts,
        vectors=vectors, model_name=embedder.info.name, model_revision=embedder.info.revision,
        dim=embedder.info.dim, embedded=len(firsts), reused=len(batch.chunks) - len(firsts),
        dead_letters=batch.dead_letters, seconds=time.perf_counter() - started, device=embedder.device,
        fingerprint=batch.fingerprint, unchanged=batch.unchanged, source=batch.source, kept=batch.kept,
        deleted=batch.deleted, changes=batch.changes,
    )


def load_embeddings(conn: psycopg.Connection, batch: DayEmbeddings) -> DayLoad:
    """Swap the day in, or, for an unchanged day, leave the stored one exactly as it is."""
    stored = model_registry.lookup(conn, batch.model_name, batch.model_revision)
    if stored is None:
        raise StoredStateError(
            f"embedding model {batch.model_name}@{batch.model_revision} is not registered: re-run the embedding step")
    if batch.unchanged:
        return days.unchanged_day(conn, batch.day, stored.id, batch.source)
    return days.replace_day(conn, batch, stored.id)
