"""All SQL that writes or reads docvec's tables for ingestion: models, day rebuilds, reuse, dead letters."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pipeline import layout, models, vector_index
from pipeline.embedding import ModelInfo
from pipeline.errors import DatabaseSetupError, DimensionMismatchError
from pipeline.index_policy import IndexPlan, PartitionStats
from pipeline.layout import StoredPartition
from pipeline.loader import copy_rows
from pipeline.records import DayEmbeddings, DayLoad, SourceState
from pipeline.sources import DeadLetter
from pipeline.vector_index import ProgressLog

CHUNK_COLUMNS = ("ingest_date", "chunk_id", "doc_id", "seq", "text", "token_count", "content_sha256",
                 "metadata", "model_id", "embedding")
CHUNK_TYPES = ("date", "text", "text", "int4", "text", "int4", "text", "jsonb", "int4", "vector")
DOCUMENT_COLUMNS = ("ingest_date", "doc_id", "source_uri", "content_sha256", "bytes", "chunk_count", "metadata")
DOCUMENT_TYPES = ("date", "text", "text", "text", "int8", "int4", "jsonb")

# Two-key advisory lock namespace: (DAY_LOCK, day ordinal) serialises rebuilds of the same day (or of
# the block holding it) only.
DAY_LOCK = 0x646F6376  # "docv"
_INDEX_ON_PARENT = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ")


def register_model(conn: psycopg.Connection, info: ModelInfo) -> int:
    """The id of this (model, revision), created on first use; refuses a dimension the table cannot hold."""
    column_dim = chunks_dimension(conn)
    if info.dim != column_dim:
        raise DimensionMismatchError(
            f"model {info.name} produces {info.dim}-d vectors but chunks.embedding is vector({column_dim}). "
            "Use a model with the same dimension, or migrate a fresh database for this model "
            "(DOCVEC_HOME or DATABASE_URL pointing elsewhere, then `docvec migrate`)."
        )
    existing = registered_model(conn, info)
    if existing is not None:
        return existing
    # Insert only when missing: an upsert would rewrite the row (and leave a dead tuple) on every call.
    conn.execute(
        """
        INSERT INTO embedding_models (name, revision, dim, normalized, max_seq_length)
        VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name, revision) DO NOTHING
        """,
        (info.name, info.revision, info.dim, info.normalized, info.max_seq_length),
    )
    registered = registered_model(conn, info)
    assert registered is not None
    return registered


def registered_model(conn: psycopg.Connection, info: ModelInfo) -> int | None:
    """The id of this (model, revision) if anything was ever embedded with it; read-only, so it also
    works on a read replica."""
    row = conn.execute("SELECT id, dim FROM embedding_models WHERE name = %s AND revision = %s",
                       (info.name, info.revision)).fetchone()
    if row is None:
        return None
    if row[1] != info.dim:
        raise DimensionMismatchError(
            f"model {info.name}@{info.revision} is registered with dim {row[1]} but now produces {info.dim}"
        )
    return int(row[0])


def model_id(conn: psycopg.Connection, name: str, revision: str) -> int:
    row = conn.execute("SELECT id FROM embedding_models WHERE name = %s AND revision = %s", (name, revision)).fetchone()
    if row is None:
        raise DatabaseSetupError(f"embedding model {name}@{revision} is not registered: re-run the embedding step")
    return int(row[0])


def chunks_dimension(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('chunks') AND attname = 'embedding'"
    ).fetchone()
    if row is None:
        raise DatabaseSetupError("table chunks does not exist: run `docvec migrate` first")
    return int(row[0])


def reusable_vectors(conn: psycopg.Connection, model_id: int, content_hashes: Sequence[str]) -> dict[str, np.ndarray]:
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
    return {sha: vector.to_numpy() for sha, vector in rows}


def _validate_vectors(batch: DayEmbeddings, column_dim: int) -> None:
    vectors = batch.vectors
    if vectors.ndim != 2 or vectors.shape[0] != len(batch.chunks):
        raise DimensionMismatchError(
            f"{batch.day}: {vectors.shape} vectors for {len(batch.chunks)} chunks (one row per chunk expected)"
        )
    if vectors.shape[1] != column_dim:
        raise DimensionMismatchError(
            f"{batch.day}: vectors have {vectors.shape[1]} dimensions but chunks.embedding is vector({column_dim})"
        )
    bad = ~np.isfinite(vectors).all(axis=1) | ~vectors.any(axis=1)
    if bad.any():
        first = batch.chunks[int(np.argmax(bad))]
        raise DimensionMismatchError(
            f"{batch.day}: {int(bad.sum())} vectors are NaN/infinite or all zeros (first: chunk {first.chunk_id} of "
            f"{first.doc_id}); re-run the day, and check the model if it persists"
        )


def _copy_partition_indexes(conn: psycopg.Connection, stage: str) -> None:
    """Build the parent's secondary indexes on the staging table now, so ATTACH finds them and the
    swap itself stays a short, catalog-only step."""
    definitions = conn.execute(
        """
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = 'chunks'::regclass AND NOT i.indisprimary
        """
    ).fetchall()
    for (definition,) in definitions:
        conn.execute(_INDEX_ON_PARENT.sub(lambda m: f"CREATE {m.group(1) or ''}INDEX ON {stage} ", definition))


def _give_to_table_owner(conn: psycopg.Connection, table: str) -> None:
    """Make a new partition belong to whoever owns ``chunks`` (``docvec_owner`` once migration 0004
    set up roles), so any loader can later swap or drop it, not only the login that created it."""
    owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
                         "AND tablename = 'chunks'").fetchone()[0]
    if owner != conn.info.user:
        conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(owner)))


def lock_days(conn: psycopg.Connection, first: dt.date, last: dt.date, *, wait: bool = True) -> bool:
    """Take the day locks of ``first``..``last`` for this transaction, in day order (so two rebuilds of
    overlapping ranges cannot deadlock). ``wait=False``: if any is held elsewhere, take none and
    return False."""
    days = range(first.toordinal(), last.toordinal() + 1)
    if wait:
        for ordinal in days:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (DAY_LOCK, ordinal))
        return True
    try:
        with conn.transaction():  # a savepoint: rolling it back releases the locks taken so far
            for ordinal in days:
                if not conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (DAY_LOCK, ordinal)).fetchone()[0]:
                    raise _Busy
    except _Busy:
        return False
    return True


class _Busy(Exception):
    pass


def claim_partitions(conn: psycopg.Connection, sources: Sequence[StoredPartition], first: dt.date, last: dt.date,
                     *, wait: bool = True) -> bool:
    """Make ``sources`` this transaction's to replace or drop: the day locks of ``first``..``last`` (see
    ``lock_days``), a re-read proving the sources are still there (a seal, reload or retention may have
    replaced them while this caller planned), and a fence against index builds on them. False when a
    source is gone or (``wait=False``) a day is being loaded; the caller then does nothing.

    The fence is SHARE UPDATE EXCLUSIVE, the lock CREATE INDEX CONCURRENTLY holds: it waits for a build
    on a source to finish and keeps new ones out, while searches read on. Without it, the swap's DROP
    would take ``chunks``' ACCESS EXCLUSIVE lock first and then queue behind the build, stalling every
    search for the rest of the build (and a stalled search whose snapshot the build then waits for
    closes a deadlock)."""
    if not lock_days(conn, first, last, wait=wait):
        return False
    current = {p.table for p in layout.partitions(conn)}
    if not all(s.table in current for s in sources):
        return False
    for source in sources:
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(sql.Identifier(source.table)))
    return True


def _locked_partition(conn: psycopg.Connection, day: dt.date) -> StoredPartition | None:
    """The partition holding ``day`` (a day partition or a sealed block), claimed (see
    ``claim_partitions``), or None with the day locked when no partition holds it yet."""
    while True:
        found = layout.partition_for(conn, day)
        try:
            # A savepoint: when a seal or retention changed the partition while this waited, its locks are
            # released, so the next attempt takes its days' locks in order again (no deadlock with a rebuild).
            with conn.transaction():
                if found is None:
                    lock_days(conn, day, day)
                    if layout.partition_for(conn, day) is not None:
                        raise _Busy
                elif not claim_partitions(conn, [found], found.first, found.last):
                    raise _Busy
            return found
        except _Busy:
            continue


def _create_stage(conn: psycopg.Connection, first: dt.date, last: dt.date) -> str:
    """An empty table shaped like ``chunks`` for the days ``first``..``last``, created in this
    transaction (so with wal_level=minimal its COPY writes no WAL), with the CHECK that lets ATTACH
    skip its validation scan."""
    stage = layout.staging_name(first, last)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(stage)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {stage} (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING CONSTRAINTS, "
            "CONSTRAINT {check} CHECK (ingest_date >= {lo} AND ingest_date < {hi}))"
        ).format(stage=sql.Identifier(stage), check=sql.Identifier(f"{stage}_range"),
                 lo=sql.Literal(first), hi=sql.Literal(last + dt.timedelta(days=1)))
    )
    _give_to_table_owner(conn, stage)
    return stage


def _carry_rows(conn: psycopg.Connection, stage: str, source: str, condition: sql.Composable,
                params: Sequence[Any]) -> int:
    columns = sql.SQL(", ").join(map(sql.Identifier, CHUNK_COLUMNS + ("created_at",)))
    return conn.execute(sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {}").format(
        sql.Identifier(stage), sql.Identifier(source), condition, cols=columns), params).rowcount


def _swap_in(conn: psycopg.Connection, stage: str, first: dt.date, last: dt.date,
             replaced: Sequence[StoredPartition], index_plan: Callable[[PartitionStats], IndexPlan | None] | None = None,
             log: ProgressLog = lambda _: None) -> str:
    """Finish the staging table (keys, the parent's indexes, a vector index when ``index_plan`` asks
    for one, statistics) and swap it in for the ``replaced`` partitions. Readers see the old
    partitions or the new one; a crash at any point leaves the old ones."""
    partition = layout.partition_name(first, last)
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (ingest_date, model_id, chunk_id)").format(
        sql.Identifier(stage)))
    _copy_partition_indexes(conn, stage)
    if index_plan is not None:
        stats = vector_index.partition_stats(conn, stage)
        plan = index_plan(stats)
        if plan is not None:
            vector_index.build_on_new_table(conn, stage, partition, plan, stats, log)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(stage)))
    for old in replaced:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(old.table)))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(stage), sql.Identifier(partition)))
    conn.execute(
        sql.SQL("ALTER TABLE chunks ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(partition), sql.Literal(first), sql.Literal(last + dt.timedelta(days=1))))
    # The CHECK only existed to let ATTACH skip its validation scan; the partition bound now holds.
    conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
        sql.Identifier(partition), sql.Identifier(f"{stage}_range")))
    return partition


def replace_day(conn: psycopg.Connection, batch: DayEmbeddings, model_id: int) -> DayLoad:
    """Rebuild one day atomically: a staging table for the partition that holds the day (its own, or
    the sealed block it was merged into) gets the day's new rows by binary COPY FREEZE and everything
    else of that partition as it was, then replaces it. A day partition's vector index is left to the
    ``vector_index`` step that follows; a block gets its index back before the swap, because its other
    days are served data that search must not fall back to an exact scan of (next to embedding a
    day, the rebuild is cheap: 91 s for a 333k-row block against ~70 min to embed a 100k-chunk day)."""
    started = time.perf_counter()
    day = batch.day
    with conn.transaction():
        target = _locked_partition(conn, day)
        first, last = (target.first, target.last) if target else (day, day)
        _validate_vectors(batch, chunks_dimension(conn))
        stage = _create_stage(conn, first, last)
        cursor = conn.cursor()
        copy_started = time.perf_counter()
        rows = (
            (day, c.chunk_id, c.doc_id, c.seq, c.text, c.token_count, c.content_sha256, c.metadata, model_id, v)
            for c, v in zip(batch.chunks, batch.vectors)
        )
        stats = copy_rows(cursor, stage, CHUNK_COLUMNS, CHUNK_TYPES, rows, freeze=True)
        copy_seconds = time.perf_counter() - copy_started
        replaced = carried = 0
        if target is not None:
            replaced = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE ingest_date = %s AND model_id = %s").format(
                sql.Identifier(target.table)), (day, model_id)).fetchone()[0]
            # The other days of a block stay exactly as they were, and so do other models' vectors of
            # this day (the serving set while this is a shadow build, or the previous model kept for
            # rollback).
            carried = _carry_rows(conn, stage, target.table, sql.SQL("ingest_date <> %s OR model_id = ANY(%s)"),
                                  (day, models.carried_model_ids(conn, model_id)))
        keep_index = vector_index.same_index_as(conn, target.table) if target and target.is_block else None
        partition = _swap_in(conn, stage, first, last, [target] if target else [], keep_index)

        models.activate_first(conn, model_id)  # a new store serves its first model from its first day
        conn.execute("DELETE FROM documents WHERE ingest_date = %s", (day,))
        copy_rows(cursor, "documents", DOCUMENT_COLUMNS, DOCUMENT_TYPES, (
            (day, d.doc_id, d.source_uri, d.content_sha256, d.bytes, batch.chunk_counts.get(d.doc_id, 0), d.metadata)
            for d in batch.documents
        ))
        record_dead_letters(conn, day, batch.dead_letters)
        # Search's latest-version anti join plans from these statistics; keep them current per day.
        conn.execute("ANALYZE documents")
        conn.execute(
            """
            INSERT INTO ingest_days (ingest_date, fingerprint, model_id, documents, chunks, embedded, reused,
                                     dead_letters, source_signature, content_fingerprint)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (ingest_date, model_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
                documents = EXCLUDED.documents, chunks = EXCLUDED.chunks, embedded = EXCLUDED.embedded,
                reused = EXCLUDED.reused, dead_letters = EXCLUDED.dead_letters,
                source_signature = EXCLUDED.source_signature, content_fingerprint = EXCLUDED.content_fingerprint,
                loaded_at = now()
            """,
            (day, batch.fingerprint, model_id, len(batch.documents), stats.rows, batch.embedded, batch.reused,
             len(batch.dead_letters), batch.source.signature or None, batch.source.content_fingerprint or None),
        )
        table_bytes = conn.execute("SELECT pg_total_relation_size(%s)", (partition,)).fetchone()[0]
    return DayLoad(day=day, documents=len(batch.documents), chunks=stats.rows, replaced_chunks=int(replaced),
                   carried_chunks=int(carried), partition=partition,
                   dead_letters=len(batch.dead_letters), copy_seconds=copy_seconds,
                   seconds=time.perf_counter() - started, table_bytes=int(table_bytes))


def rebuild_partitions(conn: psycopg.Connection, sources: Sequence[StoredPartition], first: dt.date, last: dt.date,
                       index_plan: Callable[[PartitionStats], IndexPlan | None], *, wait: bool = True,
                       log: ProgressLog = lambda _: None) -> str | None:
    """Replace ``sources`` by one partition of their rows dated ``first``..``last`` (a seal merges days
    into a block; retention keeps the part of a block inside the window), with the vector index
    ``index_plan`` chooses for the new table built before the swap. Returns the new partition, or
    None when the sources changed meanwhile or (``wait=False``) a day of theirs is being loaded."""
    if any(s.last > last for s in sources):
        raise ValueError("a rebuild may drop days before its range, never after it")
    with conn.transaction():
        if not claim_partitions(conn, sources, min([first, *(s.first for s in sources)]), last, wait=wait):
            return None
        stage = _create_stage(conn, first, last)
        for source in sources:
            _carry_rows(conn, stage, source.table, sql.SQL("ingest_date BETWEEN %s AND %s"), (first, last))
        return _swap_in(conn, stage, first, last, sources, index_plan, log)


def has_fingerprint(conn: psycopg.Connection, day: dt.date, fingerprint: str) -> bool:
    """Whether the stored day was built from exactly this input (the fingerprint names the model too),
    and its partition is there to prove it."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ingest_days WHERE ingest_date = %s AND fingerprint = %s) "
        f"AND {layout.partition_exists_sql('%s::date')}",
        (day, fingerprint, day),
    ).fetchone()[0]


def stored_source(conn: psycopg.Connection, day: dt.date) -> SourceState | None:
    """What the stored day was built from, if its partition is there and both parts were recorded."""
    row = conn.execute(
        "SELECT source_signature, content_fingerprint FROM ingest_days "
        f"WHERE ingest_date = %s AND {layout.partition_exists_sql('ingest_date')} "
        "AND source_signature IS NOT NULL AND content_fingerprint IS NOT NULL ORDER BY loaded_at DESC LIMIT 1",
        (day,),
    ).fetchone()
    return SourceState(signature=row[0], content_fingerprint=row[1]) if row else None


def unchanged_day(conn: psycopg.Connection, day: dt.date, model_id: int, source: SourceState | None = None) -> DayLoad:
    """What an unchanged day holds, reported without touching its chunks. A new ``source`` signature
    (files touched or copied but with the same contents) is recorded so the next scan need not read them."""
    if source is not None and source.signature and source.content_fingerprint:
        conn.execute(
            "UPDATE ingest_days SET source_signature = %s, content_fingerprint = %s WHERE ingest_date = %s "
            "AND model_id = %s AND source_signature IS DISTINCT FROM %s",
            (source.signature, source.content_fingerprint, day, model_id, source.signature),
        )
    row = conn.execute("SELECT documents, chunks, dead_letters FROM ingest_days WHERE ingest_date = %s AND model_id = %s",
                       (day, model_id)).fetchone()
    held_by = layout.partition_for(conn, day)
    if row is None or held_by is None:
        raise DatabaseSetupError(f"{day} was judged unchanged but has no ingest_days row or partition: rerun it with force")
    return DayLoad(day=day, documents=row[0], chunks=row[1], replaced_chunks=0, dead_letters=row[2],
                   copy_seconds=0.0, seconds=0.0, table_bytes=held_by.bytes, partition=held_by.table, unchanged=True)


def record_dead_letters(conn: psycopg.Connection, day: dt.date, letters: Sequence[DeadLetter]) -> None:
    """Upsert this day's dead letters (attempts counted); mark resolved the ones whose file now loads
    or is gone from the day."""
    with conn.cursor() as cursor:
        if letters:
            cursor.executemany(
                """
                INSERT INTO dead_letters (source_uri, ingest_date, stage, error, detail)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (source_uri, ingest_date, stage) DO UPDATE
                SET error = EXCLUDED.error, detail = EXCLUDED.detail, last_seen = now(),
                    attempts = dead_letters.attempts + 1, resolved_at = NULL
                """,
                [(d.source_uri, d.ingest_date, d.stage, d.error, d.detail) for d in letters],
            )
        # Every open letter of the day that did not fail again was fixed or removed: resolved.
        still_bad = [d.source_uri for d in letters]
        cursor.execute(
            """
            UPDATE dead_letters SET resolved_at = now()
            WHERE ingest_date = %s AND resolved_at IS NULL AND NOT (source_uri = ANY(%s))
            """,
            (day, still_bad),
        )


def day_chunk_count(conn: psycopg.Connection, day: dt.date, model_id: int) -> int:
    return int(conn.execute("SELECT count(*) FROM chunks WHERE ingest_date = %s AND model_id = %s",
                            (day, model_id)).fetchone()[0])


def open_dead_letters(conn: psycopg.Connection, days: Sequence[dt.date] | None = None) -> list[dict[str, Any]]:
    query = "SELECT source_uri, ingest_date, stage, error, detail, attempts FROM dead_letters WHERE resolved_at IS NULL"
    params: tuple[Any, ...] = ()
    if days is not None:
        query += " AND ingest_date = ANY(%s)"
        params = (list(days),)
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query + " ORDER BY ingest_date, source_uri", params).fetchall()
