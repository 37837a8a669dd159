"""One ingest day in the store: its chunks (in the partition that holds it), its ``documents`` rows
(owned here), its dead letters and its ``ingest_days`` record. Loading a day replaces all of them in
one transaction."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pipeline.errors import (
    DimensionMismatchError,
    InvalidVectorError,
    StoredStateError,
)
from pipeline.lexical.bm25 import LexicalEntry, stored_term_ids
from pipeline.records import ChunkRecord, DayEmbeddings, DayLoad, KeptDocument, SourceState
from pipeline.storage import (
    catalog,
    dead_letters,
    ingest_days,
    model_lifecycle,
    partitions,
    term_stats,
    tombstones,
)
from pipeline.storage.loader import copy_rows
from pipeline.storage.queries import value
from pipeline.storage.vector_storage import VectorColumn, as_float32, stored_column

DOCUMENT_COLUMNS = ("ingest_date", "doc_id", "source_uri", "content_sha256", "bytes", "chunk_count", "metadata",
                    "source_stamp", "readers")
DOCUMENT_TYPES = ("date", "text", "text", "text", "int8", "int4", "jsonb", "text", "text[]")


def reusable_vectors(conn: psycopg.Connection[Any], model_id: int,
                     content_hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """Vectors this model already made for any of these chunk contents (on any day)."""
    if not content_hashes:
        return {}
    rows = conn.execute(
        """
        SELECT DISTINCT ON (content_sha256) content_sha256, embedding
        FROM chunks WHERE model_id = %s AND content_sha256 = ANY(%s)
        """,
        (model_id, list(set(content_hashes))),
    ).fetchall()
    return {sha: as_float32(vector) for sha, vector in rows}


def _validate_vectors(batch: DayEmbeddings, column: VectorColumn) -> None:
    vectors = batch.vectors
    if vectors.ndim != 2 or vectors.shape[0] != len(batch.chunks):
        raise DimensionMismatchError(
            f"{batch.day}: {vectors.shape} vectors for {len(batch.chunks)} chunks (one row per chunk expected)"
        )
    if vectors.shape[1] != column.dim:
        raise DimensionMismatchError(
            f"{batch.day}: vectors have {vectors.shape[1]} dimensions but chunks.embedding is {column.type_name}"
        )
    bad = ~np.isfinite(vectors).all(axis=1) | ~vectors.any(axis=1)
    if bad.any():
        first = batch.chunks[int(np.argmax(bad))]
        raise InvalidVectorError(
            f"{batch.day}: {int(bad.sum())} vectors are NaN/infinite or all zeros (first: chunk {first.chunk_id} of "
            f"{first.doc_id}); re-run the day, and check the model if it persists"
        )


def replace_day(conn: psycopg.Connection[Any], batch: DayEmbeddings, model_id: int) -> DayLoad:
    """Rebuild one day atomically: a staging table for the partition that holds the day (its own, or
    the sealed block it was merged into) gets the day's new rows by binary COPY FREEZE and everything
    else of that partition as it was, then replaces it. A day partition's vector index is left to the
    ``vector_index`` step that follows; a block gets its index back before the swap, because its other
    days are served data that search must not fall back to an exact scan of (next to embedding a
    day, the rebuild is cheap: 91 s for a 333k-row block against ~70 min to embed a 100k-chunk day)."""
    started = time.perf_counter()
    day = batch.day
    with conn.transaction():
        target = partitions.claim_holding(conn, day)
        first, last = (target.first, target.last) if target else (day, day)
        column = stored_column(conn)  # the type COPY writes: halfvec or vector, as the store holds it
        _validate_vectors(batch, column)
        stage = partitions.create_stage(conn, first, last)
        cursor = conn.cursor()
        copy_started = time.perf_counter()
        # Each chunk carries its version's readers (migration 0015: the chunks policy reads them there); the
        # triggers on documents correct them when the version rows below set others.
        readers = {d.doc_id: list(d.readers) for d in batch.documents}
        # Grouped by readers, a document's chunks in sequence, as a seal writes a block (partitions.GROUPED_ORDER).
        ordered = sorted(zip(batch.chunks, batch.vectors, strict=True),
                         key=lambda pair: (readers.get(pair[0].doc_id, []), pair[0].doc_id, pair[0].seq))
        rows = (
            (day, c.chunk_id, c.doc_id, c.seq, c.text, c.token_count, c.content_sha256, c.metadata, model_id,
             column.adapt(v),
             c.context, *term_stats.lexical_columns(c.lexical), c.prior, readers.get(c.doc_id, []))
            for c, v in ordered
        )
        stats = copy_rows(cursor, stage, partitions.CHUNK_COLUMNS, partitions.chunk_types(column.storage), rows,
                          freeze=True)
        copy_seconds = time.perf_counter() - copy_started
        replaced = carried = kept = 0
        kept_ids = [d.doc_id for d in batch.kept]
        other_models = model_lifecycle.carried_model_ids(conn, model_id)
        if target is not None:
            replaced = partitions.rows_of(conn, target.table, day, model_id)
            # The other days of a block stay exactly as they were, and so do other models' vectors of
            # this day (the serving set while this is a shadow build, or the previous model kept for
            # rollback).
            carried = partitions.carry_rows(conn, stage, target.table, sql.SQL("ingest_date <> %s OR model_id = ANY(%s)"),
                                            (day, other_models))
            # And so do this model's chunks of the day's documents whose files did not change.
            kept = partitions.carry_rows(conn, stage, target.table,
                                         sql.SQL("ingest_date = %s AND model_id = %s AND doc_id = ANY(%s)"),
                                         (day, model_id, kept_ids)) if kept_ids else 0
        elif kept_ids:
            raise StoredStateError(f"{day}: documents were kept from a load that is not stored; rerun it with force")
        keep_index = partitions.same_index(catalog.index_spec_of(conn, target.table)) if target and target.is_block else None
        partition = partitions.swap_in(conn, stage, first, last, [target] if target else [], keep_index)

        model_lifecycle.activate_first(conn, model_id)  # a new store serves its first model from its first day
        conn.execute("DELETE FROM documents WHERE ingest_date = %s AND NOT (doc_id = ANY(%s))", (day, kept_ids))
        copy_rows(cursor, "documents", DOCUMENT_COLUMNS, DOCUMENT_TYPES, (
            (day, d.doc_id, d.source_uri, d.content_sha256, d.bytes, batch.chunk_counts.get(d.doc_id, 0), d.metadata,
             d.stamp or None, list(d.readers))
            for d in batch.documents
        ))
        # Kept documents get the readers recomputed for them; then every version of the day's documents
        # carries its latest version's (revoking a reader on a new version revokes the old ones too).
        _set_readers_on(conn, day, {k.doc_id: k.readers for k in batch.kept if k.readers is not None})
        propagate_readers(conn, [d.doc_id for d in batch.documents] + kept_ids)
        dead_letters.record(conn, day, batch.dead_letters)
        # The day's manifest, or the files gone from a collection's snapshot: written with the day.
        deleted = tombstones.replace_with_day(conn, day, batch.deleted,
                                              "collection" if batch.changes is not None else "manifest")
        term_stats.refresh_day(conn, day, model_id, kept_models=other_models)
        # Search's latest-version anti join plans from these statistics; keep them current per day.
        conn.execute("ANALYZE documents")
        ingest_days.record_load(conn, batch, model_id, documents=len(batch.documents) + len(kept_ids),
                                chunks=stats.rows + kept)
        table_bytes = catalog.relation_size(conn, partition)
    return DayLoad(day=day, documents=len(batch.documents) + len(kept_ids), chunks=stats.rows + kept,
                   replaced_chunks=int(replaced), carried_chunks=int(carried), kept_chunks=kept, partition=partition,
                   dead_letters=len(batch.dead_letters), copy_seconds=copy_seconds,
                   seconds=time.perf_counter() - started, table_bytes=table_bytes, deleted=len(deleted.hidden),
                   deleted_unknown=tuple(deleted.unknown))


def unchanged_day(conn: psycopg.Connection[Any], day: dt.date, model_id: int,
                  source: SourceState | None = None) -> DayLoad:
    """What an unchanged day holds, reported without touching its chunks. A new ``source`` signature
    (files touched or copied but with the same contents) is recorded so the next scan need not read them."""
    if source is not None and source.signature and source.content_fingerprint:
        ingest_days.record_signature(conn, day, model_id, source)
    row = ingest_days.counts(conn, day, model_id)
    held_by = catalog.partition_for(conn, day)
    if row is None or held_by is None:
        raise StoredStateError(f"{day} was judged unchanged but has no ingest_days row or partition: rerun it with force")
    return DayLoad(day=day, documents=row[0], chunks=row[1], replaced_chunks=0, dead_letters=row[2],
                   copy_seconds=0.0, seconds=0.0, table_bytes=held_by.bytes, partition=held_by.table, unchanged=True)


def forget_before(conn: psycopg.Connection[Any], horizon: dt.date, keep: Sequence[dt.date]) -> int:
    """Delete the ``documents`` and ``ingest_days`` rows of days before ``horizon`` (their chunks are
    already dropped), except the ``keep`` days; returns the documents deleted."""
    deleted = conn.execute("DELETE FROM documents WHERE ingest_date < %s AND NOT (ingest_date = ANY(%s))",
                           (horizon, list(keep))).rowcount
    ingest_days.forget_before(conn, horizon, keep)
    term_stats.forget_before(conn, horizon, keep)
    tombstones.forget_before(conn, horizon)
    return deleted


def _set_readers_on(conn: psycopg.Connection[Any], day: dt.date | None,
                    readers: Mapping[str, Sequence[str]]) -> int:
    """Set the readers of the documents ``readers`` names ({doc_id: principals}): their version stored on
    ``day``, or every version when ``day`` is None. Returns the rows changed."""
    if not readers:
        return 0
    return conn.execute(
        """
        UPDATE documents d SET readers = v.readers
        FROM jsonb_to_recordset(%s::jsonb) AS v(doc_id text, readers text[])
        WHERE d.doc_id = v.doc_id AND (%s::date IS NULL OR d.ingest_date = %s::date) AND d.readers <> v.readers
        """, (Jsonb([{"doc_id": doc_id, "readers": list(r)} for doc_id, r in readers.items()]), day, day)).rowcount


def set_readers(conn: psycopg.Connection[Any], readers: Mapping[str, Sequence[str]]) -> int:
    """Set the readers of every stored version of the documents ``readers`` names ({doc_id: principals}),
    in one transaction: a collection's unchanged documents whose readers changed (a sidecar edit)."""
    with conn.transaction():
        return _set_readers_on(conn, None, readers)


def propagate_readers(conn: psycopg.Connection[Any], doc_ids: Sequence[str]) -> int:
    """Give every version of these documents the readers of its latest stored version. Returns the
    rows changed."""
    if not doc_ids:
        return 0
    return conn.execute(
        """
        UPDATE documents d SET readers = l.readers
        FROM (SELECT DISTINCT ON (doc_id) doc_id, readers FROM documents WHERE doc_id = ANY(%s)
              ORDER BY doc_id, ingest_date DESC) l
        WHERE d.doc_id = l.doc_id AND d.readers <> l.readers
        """, (list(doc_ids),)).rowcount


# What a version's metadata declares as its readers: its front matter's, else those its object's metadata
# declared in object storage (pipeline/ingest/permissions.py's declared_in and OBJECT_READERS).
_DECLARED = "coalesce(nullif(metadata -> 'readers', 'null'::jsonb), metadata -> 'object_readers')"


def declared_readers(conn: psycopg.Connection[Any], day: dt.date) -> dict[str, Any]:
    """The readers the day's stored documents declared in their metadata (front matter, else their
    object's metadata), as stored: {doc_id: value}, for those that declared any."""
    return dict(conn.execute(
        f"SELECT doc_id, {_DECLARED} FROM documents WHERE ingest_date = %s AND {_DECLARED} IS NOT NULL",
        (day,)).fetchall())


def readers_of(conn: psycopg.Connection[Any],
               versions: Sequence[tuple[str, dt.date]]) -> dict[tuple[str, dt.date], tuple[str, ...]]:
    """The stored readers of these document versions ``(doc_id, ingest_date)``, in one query, as the
    connection's role may see them (as principals, only the versions they may read): an admin's view of
    search hits. Versions not stored (or not visible) are absent."""
    if not versions:
        return {}
    rows = conn.execute(
        """
        SELECT d.doc_id, d.ingest_date, d.readers
        FROM documents d JOIN unnest(%s::text[], %s::date[]) AS v(doc_id, day)
          ON d.doc_id = v.doc_id AND d.ingest_date = v.day
        """, ([v[0] for v in versions], [v[1] for v in versions])).fetchall()
    return {(doc_id, day): tuple(readers) for doc_id, day, readers in rows}


def restricted_counts(conn: psycopg.Connection[Any]) -> dict[dt.date, int]:
    """Per stored day, how many of its documents are not readable by everyone."""
    return dict(conn.execute(
        "SELECT ingest_date, count(*) FROM documents WHERE NOT ('*' = ANY(readers)) GROUP BY ingest_date").fetchall())


def chunk_count(conn: psycopg.Connection[Any], day: dt.date, model_id: int) -> int:
    return int(value(conn, "SELECT count(*) FROM chunks WHERE ingest_date = %s AND model_id = %s", (day, model_id)))


def stored_documents(conn: psycopg.Connection[Any], day: dt.date) -> dict[str, tuple[str, str]]:
    """The day's stored documents that recorded their listing stamp: {doc_id: (stamp, content_sha256)}."""
    return {doc_id: (stamp, sha) for doc_id, stamp, sha in conn.execute(
        "SELECT doc_id, source_stamp, content_sha256 FROM documents WHERE ingest_date = %s AND source_stamp IS NOT NULL",
        (day,))}


def documents_before(conn: psycopg.Connection[Any], horizon: dt.date) -> list[dt.date]:
    """Days before ``horizon`` that still have ``documents`` rows."""
    return sorted(r[0] for r in conn.execute("SELECT DISTINCT ingest_date FROM documents WHERE ingest_date < %s",
                                             (horizon,)))


@dataclass(frozen=True)
class LiveVersion:
    """A document's version that search shows as of some day: stored on ``day`` with the listing
    ``stamp`` (empty when none was recorded) and content hash it was loaded with."""
    day: dt.date
    stamp: str
    content_sha256: str
    readers: tuple[str, ...] = ("*",)  # as stored
    declared: Any = None  # the readers its metadata (front matter) declared, as stored; None: none


def live_versions(conn: psycopg.Connection[Any], before: dt.date) -> dict[str, LiveVersion]:
    """Each document's live version as of the end of the day before ``before``: its latest version stored
    before that day, unless a tombstone dated on or after it (and before ``before``) deleted it. What a
    collection's snapshot on ``before`` is compared with."""
    rows = conn.execute(
        """
        SELECT v.doc_id, v.ingest_date, coalesce(v.source_stamp, ''), v.content_sha256, v.readers, v.declared
        FROM (SELECT DISTINCT ON (doc_id) doc_id, ingest_date, source_stamp, content_sha256, readers,
                     coalesce(nullif(metadata -> 'readers', 'null'::jsonb), metadata -> 'object_readers') AS declared
              FROM documents WHERE ingest_date < %(day)s ORDER BY doc_id, ingest_date DESC) v
        WHERE NOT EXISTS (SELECT 1 FROM document_deletions t WHERE t.doc_id = v.doc_id
                          AND t.ingest_date >= v.ingest_date AND t.ingest_date < %(day)s)
        """, {"day": before}).fetchall()
    return {doc_id: LiveVersion(day, stamp, sha, tuple(readers), declared)
            for doc_id, day, stamp, sha, readers, declared in rows}


def restamp(conn: psycopg.Connection[Any], versions: Sequence[tuple[str, dt.date, str]]) -> int:
    """Record new listing stamps ``(doc_id, day, stamp)`` on stored versions whose files were found
    with the same bytes under another stamp (touched, copied again), so the next listing alone shows
    them unchanged. Returns the versions updated."""
    if not versions:
        return 0
    with conn.transaction():
        return conn.execute(
            """
            UPDATE documents d SET source_stamp = v.stamp
            FROM unnest(%s::text[], %s::date[], %s::text[]) AS v(doc_id, day, stamp)
            WHERE d.doc_id = v.doc_id AND d.ingest_date = v.day
            """, ([v[0] for v in versions], [v[1] for v in versions], [v[2] for v in versions])).rowcount


def stored_chunks(conn: psycopg.Connection[Any], day: dt.date, model_id: int) -> list[ChunkRecord]:
    """The model's chunks of the day as they were cut and indexed (text, header, metadata, BM25 entry
    and prior): what another model embeds when the day's files are gone (a collection's past day)."""
    rows = conn.execute(
        """
        SELECT chunk_id, doc_id, seq, text, token_count, content_sha256, metadata, context, lexical_terms, lexical, prior
        FROM chunks WHERE ingest_date = %s AND model_id = %s ORDER BY doc_id, seq
        """, (day, model_id)).fetchall()
    chunks = []
    for chunk_id, doc_id, seq, text, tokens, sha, metadata, header, terms, weights, prior in rows:
        entry = None
        if terms is not None and weights is not None:
            values = dict(zip(weights.indices(), weights.values(), strict=True))
            ids = stored_term_ids(terms)
            entry = LexicalEntry(ids, tuple(float(values[t]) for t in ids), 0)
        chunks.append(ChunkRecord(chunk_id=chunk_id, doc_id=doc_id, seq=seq, text=text, token_count=tokens,
                                  content_sha256=sha, metadata=metadata, context=header or "", lexical=entry,
                                  prior=float(prior if prior is not None else 1.0)))
    return chunks


def versions_on(conn: psycopg.Connection[Any], day: dt.date) -> list[KeptDocument]:
    """The document versions stored on ``day``, as kept documents (id, content hash, stored readers)."""
    return [KeptDocument(doc_id, sha, readers=tuple(readers)) for doc_id, sha, readers in conn.execute(
        "SELECT doc_id, content_sha256, readers FROM documents WHERE ingest_date = %s ORDER BY doc_id", (day,))]
