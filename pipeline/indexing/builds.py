"""Carrying out index plans on live partitions: build CONCURRENTLY with memory and workers sized to
fit, report progress, verify validity, measure recall against an exact scan with the search
parameters the index is served with."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pipeline.errors import DatabaseSetupError, StoredStateError
from pipeline.indexing.policy import Action, IndexPlan, IndexSettings, plan_index
from pipeline.storage import catalog, index_measures
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
    build_memory,
    create_index_concurrently,
    drop_index_concurrently,
    index_name,
    index_size,
    is_valid,
    no_log,
    partition_stats,
    record_build,
    record_recall,
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
        index_measures.poll_build_progress(conninfo, index_relname, log, stop)
    except psycopg.Error as exc:  # progress is a courtesy: never let it break the build
        log(f"progress reporting stopped: {exc}")


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
            f"({index_measures.current_setting(conn, 'maintenance_work_mem')}; "
            f"{build_memory(stats, plan.spec) // 1024**2}MB would fit the graph)")
    else:
        set_build_resources(conn, stats, plan.spec, local=False)
    stop = threading.Event()
    conninfo = make_conninfo(conn.info.dsn, password=conn.info.password) if conn.info.password else conn.info.dsn
    watcher = threading.Thread(target=_watch_progress, args=(conninfo, name, log, stop), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        create_index_concurrently(conn, name, partition, plan.spec)
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
        raise StoredStateError(f"index {name} on {partition} came out invalid and was dropped; rerun the index step")
    record_build(conn, name, stats, plan.spec)
    if existing is not None:
        drop_index_concurrently(conn, existing.name)
    log(f"built {name} ({plan.kind.value} {plan.spec.params_dict}) on {stats.rows:,} rows in {seconds:.1f} s")
    return IndexOutcome(partition, plan, stats.rows, name, seconds, index_size(conn, name))


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
    """One partition after ``upkeep``: what was done to its index, and the index's recall@10."""
    outcome: IndexOutcome
    recall_at_10: float | None  # None: exact scans, nothing to measure


def upkeep(conn: psycopg.Connection[Any], partition: str, settings: IndexSettings, *, recall_samples: int = 20,
           log: ProgressLog = no_log, pooled: bool = False) -> PartitionUpkeep | None:
    """Maintain the partition's index and know its recall (``index_recall``). None when a concurrent
    run replaced the partition after the caller listed it (parallel backfills): a sealed or trimmed
    block came with its index, and a reloaded day is indexed by the run that loaded it."""
    try:
        outcome = maintain_partition(conn, partition, settings, log=log, pooled=pooled)
        recall = index_recall(conn, partition, samples=recall_samples) if outcome.index_name else None
    except psycopg.errors.UndefinedTable:
        log(f"{partition} was replaced by a concurrent run while this one worked; left to that run")
        return None
    return PartitionUpkeep(outcome, recall)


def index_recall(conn: psycopg.Connection[Any], partition: str, *, samples: int = 20) -> float | None:
    """The recall@10 of the partition's vector index with the search parameters it is served with:
    measured once after each build and recorded with it, then read back. None: no valid index."""
    existing = catalog.existing_vector_index(conn, partition)
    if existing is None or not existing.state.valid:
        return None
    if existing.state.recall_at_10 is not None:
        return existing.state.recall_at_10
    tuning = dict(existing.state.search_params)
    recall = index_measures.recall_at_k(conn, partition, k=10, samples=samples,
                         ann=AnnSettings(ef_search=tuning.get("ef_search", DEFAULT_EF_SEARCH),
                                         probes=tuning.get("probes", DEFAULT_PROBES)))
    record_recall(conn, existing.name, recall)
    return recall
