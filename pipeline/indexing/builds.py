"""Carrying out index plans on live partitions: build CONCURRENTLY with memory and workers sized to
fit, report progress, verify validity, measure recall against an exact scan with the search
parameters the index is served with."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pipeline.errors import DatabaseSetupError
from pipeline.indexing.policy import Action, IndexPlan, IndexSettings, plan_index
from pipeline.storage import catalog
from pipeline.storage.partitions import IndexChoice
from pipeline.storage.vector_indexes import (
    DEFAULT_EF_SEARCH,
    DEFAULT_PROBES,
    AnnSettings,
    ExistingIndex,
    IndexSpec,
    IndexState,
    PartitionStats,
    ProgressLog,
    apply_ann_settings,
    build_memory,
    create_index_sql,
    drop_index_concurrently,
    index_name,
    index_size,
    is_valid,
    no_log,
    partition_stats,
    record_build,
    reset_build_resources,
    set_build_resources,
)


@dataclass(frozen=True)
class IndexOutcome:
    partition: str
    plan: IndexPlan
    rows: int
    index_name: str | None
    build_seconds: float
    size_bytes: int


def policy_index(settings: IndexSettings) -> IndexChoice:
    """For a new table: the index the policy wants for its rows (None: an exact scan)."""
    def choose(stats: PartitionStats) -> IndexSpec | None:
        decided = plan_index(stats, IndexState(), settings)
        return decided.spec if decided.action == Action.CREATE else None
    return choose


def _watch_progress(conninfo: str, index_relname: str, log: ProgressLog, stop: threading.Event) -> None:
    """Report pg_stat_progress_create_index every few seconds from a second connection."""
    try:
        _poll_progress(conninfo, index_relname, log, stop)
    except psycopg.Error as exc:  # progress is a courtesy: never let it break the build
        log(f"progress reporting stopped: {exc}")


def _poll_progress(conninfo: str, index_relname: str, log: ProgressLog, stop: threading.Event) -> None:
    with psycopg.connect(conninfo, autocommit=True) as watcher:
        while not stop.wait(3.0):
            row = watcher.execute(
                """
                SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total
                FROM pg_stat_progress_create_index WHERE index_relid = to_regclass(%s) OR
                      (index_relid = 0 AND command LIKE 'CREATE INDEX%%')
                LIMIT 1
                """, (index_relname,)).fetchone()
            if row:
                phase, blocks_done, blocks_total, tuples_done, tuples_total = row
                done = (f"{tuples_done:,}/{tuples_total:,} tuples" if tuples_total
                        else f"{blocks_done:,}/{blocks_total:,} blocks")
                log(f"building {index_relname}: {phase}, {done}")


def apply_plan(conn: psycopg.Connection[Any], partition: str, plan: IndexPlan, stats: PartitionStats,
               existing: ExistingIndex | None, log: ProgressLog = no_log, *, pooled: bool = False) -> IndexOutcome:
    """Make the partition's vector index match the plan. New indexes are built CONCURRENTLY (searches
    and loads of other days go on); a replaced index is dropped only after its successor is valid.

    ``pooled``: the connection goes through a transaction-mode pooler (PgBouncer). A session ``SET``
    would then land on whichever server connection runs it (and stay there for other clients), and
    CREATE INDEX CONCURRENTLY cannot share a transaction with ``SET LOCAL``, so the build runs with the
    server's own maintenance_work_mem and parallel workers."""
    if not conn.autocommit:
        raise DatabaseSetupError("index builds need an autocommit connection (CREATE INDEX CONCURRENTLY)")
    if plan.action == Action.KEEP:
        return IndexOutcome(partition, plan, stats.rows, existing.name if existing else None, 0.0,
                            index_size(conn, existing.name) if existing else 0)
    if plan.action == Action.DROP:
        if existing is not None:
            drop_index_concurrently(conn, existing.name)
        return IndexOutcome(partition, plan, stats.rows, None, 0.0, 0)

    name = index_name(partition, plan.kind)
    if pooled:
        log(f"through a transaction pooler: building with the server's maintenance_work_mem "
            f"({_setting(conn, 'maintenance_work_mem')}; "
            f"{build_memory(stats, plan.spec) // 1024**2}MB would fit the graph)")
    else:
        set_build_resources(conn, stats, plan.spec, local=False)
    stop = threading.Event()
    conninfo = make_conninfo(conn.info.dsn, password=conn.info.password) if conn.info.password else conn.info.dsn
    watcher = threading.Thread(target=_watch_progress, args=(conninfo, name, log, stop), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        conn.execute(create_index_sql(name, partition, plan.spec, concurrently=True))
    except psycopg.Error:
        drop_index_concurrently(conn, name)
        raise
    finally:
        stop.set()
        watcher.join(timeout=10)
        if not pooled:
            reset_build_resources(conn)
    seconds = time.perf_counter() - started
    if not is_valid(conn, name):
        drop_index_concurrently(conn, name)
        raise DatabaseSetupError(f"index {name} on {partition} came out invalid and was dropped; rerun the index step")
    record_build(conn, name, stats, plan.spec)
    if existing is not None:
        drop_index_concurrently(conn, existing.name)
    log(f"built {name} ({plan.kind.value} {plan.spec.params_dict}) on {stats.rows:,} rows in {seconds:.1f} s")
    return IndexOutcome(partition, plan, stats.rows, name, seconds, index_size(conn, name))


def _setting(conn: psycopg.Connection[Any], name: str) -> str:
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return str(row[0]) if row else "unknown"


def maintain_partition(conn: psycopg.Connection[Any], partition: str, settings: IndexSettings | None = None,
                       log: ProgressLog = no_log, *, pooled: bool = False) -> IndexOutcome:
    stats = partition_stats(conn, partition)
    existing = catalog.existing_vector_index(conn, partition)
    plan = plan_index(stats, existing.state if existing else IndexState(), settings or IndexSettings())
    log(f"{partition}: {plan.action.value} {plan.kind.value} — {plan.reason}")
    if plan.action == Action.KEEP and existing is not None and existing.state.search_params != plan.spec.search_params:
        # Built before search parameters were recorded, or by a rebuild that copied the index without
        # them: record what the policy checks (and search therefore uses) for this index.
        record_build(conn, existing.name, stats, plan.spec)
    return apply_plan(conn, partition, plan, stats, existing, log, pooled=pooled)


@dataclass(frozen=True)
class PartitionUpkeep:
    """One partition after ``upkeep``: what was done to its index and how healthy it is now."""
    outcome: IndexOutcome
    recall_at_10: float | None  # None: exact scans, nothing to measure
    invalid_index: str | None
    insane_vectors: int


def upkeep(conn: psycopg.Connection[Any], partition: str, settings: IndexSettings, dim: int, *, recall_samples: int = 20,
           log: ProgressLog = no_log, pooled: bool = False) -> PartitionUpkeep | None:
    """Maintain the partition's index, then measure its recall with the parameters search will use
    for it, and check its index and vectors. None when a concurrent run replaced the partition after
    the caller listed it (parallel backfills): a sealed or trimmed block came with its index, and a
    reloaded day is indexed by the run that loaded it."""
    try:
        outcome = maintain_partition(conn, partition, settings, log=log, pooled=pooled)
        recall = None
        if outcome.index_name:
            tuning = dict(outcome.plan.spec.search_params)
            recall = recall_at_k(conn, partition, k=10, samples=recall_samples,
                                 ann=AnnSettings(ef_search=tuning.get("ef_search", DEFAULT_EF_SEARCH),
                                                 probes=tuning.get("probes", DEFAULT_PROBES)))
        existing = catalog.existing_vector_index(conn, partition)
        insane = insane_vectors(conn, partition, dim)
    except psycopg.errors.UndefinedTable:
        log(f"{partition} was replaced by a concurrent run while this one worked; left to that run")
        return None
    invalid = existing.name if existing and not existing.state.valid else None
    return PartitionUpkeep(outcome, recall, invalid, insane)


def recall_at_k(conn: psycopg.Connection[Any], partition: str, k: int = 10, samples: int = 20,
                ann: AnnSettings | None = None, seed: float = 0.42) -> float:
    """Mean overlap of indexed top-k with exact top-k, over ``samples`` stored vectors used as queries,
    searched with ``ann`` (default: what search uses for this store, ``catalog.search_settings``)."""
    settings = ann or catalog.search_settings(conn)
    table = sql.Identifier(partition)
    with conn.transaction():
        conn.execute("SELECT setseed(%s)", (seed,))
        queries = [r[0] for r in conn.execute(
            sql.SQL("SELECT embedding FROM {} ORDER BY random() LIMIT %s").format(table), (samples,))]
    top = sql.SQL("SELECT chunk_id FROM {} ORDER BY embedding <=> %s LIMIT %s").format(table)
    overlaps = []
    for query in queries:
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")
            conn.execute("SET LOCAL enable_bitmapscan = off")
            exact = {r[0] for r in conn.execute(top, (query, k))}
        with conn.transaction():
            apply_ann_settings(conn, settings, iterative=False)
            approx = {r[0] for r in conn.execute(top, (query, k))}
        overlaps.append(len(exact & approx) / max(1, len(exact)))
    return float(np.mean(overlaps)) if overlaps else 1.0


def insane_vectors(conn: psycopg.Connection[Any], partition: str, dim: int) -> int:
    """Rows whose vector has the wrong dimension or zero length (pgvector itself refuses NaN and Inf)."""
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE vector_dims(embedding) <> %s OR vector_norm(embedding) = 0").format(
            sql.Identifier(partition)), (dim,)).fetchone()
    return int(row[0]) if row else 0
