"""Carrying out index plans on day partitions: inspect, build CONCURRENTLY with memory and workers sized
to fit, report progress, verify validity, measure recall against an exact scan."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pipeline.errors import DatabaseSetupError
from pipeline.index_policy import (
    Action,
    CurrentIndex,
    IndexKind,
    IndexPlan,
    IndexSettings,
    PartitionStats,
    hnsw_build_bytes,
    plan_index,
)

ProgressLog = Callable[[str], None]
MAX_BUILD_MEMORY = 8 * 1024**3


@dataclass(frozen=True)
class ExistingIndex:
    name: str
    state: CurrentIndex


@dataclass(frozen=True)
class IndexOutcome:
    partition: str
    plan: IndexPlan
    rows: int
    index_name: str | None
    build_seconds: float
    size_bytes: int


def partition_stats(conn: psycopg.Connection, partition: str) -> PartitionStats:
    rows, dim, model_id = conn.execute(
        sql.SQL("SELECT count(*), max(vector_dims(embedding)), min(model_id) FROM {}").format(sql.Identifier(partition))
    ).fetchone()
    return PartitionStats(rows=int(rows), dim=int(dim or 0), model_id=int(model_id or 0),
                          maintenance_work_mem_bytes=build_memory_allowance())


def build_memory_allowance() -> int:
    """What one index build may take: a quarter of this machine's memory, at most MAX_BUILD_MEMORY (the
    server is assumed local or alike; set the policy's preferred kind to ivfflat where it is smaller)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 4 * MAX_BUILD_MEMORY
    return min(MAX_BUILD_MEMORY, physical // 4)


def existing_vector_index(conn: psycopg.Connection, partition: str) -> ExistingIndex | None:
    row = conn.execute(
        """
        SELECT ic.relname, am.amname, i.indisvalid, obj_description(ic.oid, 'pg_class'), ic.reloptions
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_am am ON am.oid = ic.relam
        WHERE i.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')
        ORDER BY i.indisvalid, ic.relname LIMIT 1
        """,
        (partition,),
    ).fetchone()
    if row is None:
        return None
    name, am, valid, comment, options = row
    recorded = json.loads(comment) if comment and comment.startswith("{") else {}
    params = tuple(sorted((k, int(v)) for k, v in (o.split("=", 1) for o in options or [])))
    return ExistingIndex(name, CurrentIndex(kind=IndexKind(am), valid=bool(valid), built_rows=int(recorded.get("rows", 0)),
                                            model_id=recorded.get("model_id"), params=params))


def same_index_as(conn: psycopg.Connection, partition: str) -> Callable[[PartitionStats], IndexPlan | None]:
    """For rebuilding ``partition``'s rows into a new table: the vector index it has now (kind and
    parameters), or none if it has none or an invalid one."""
    existing = existing_vector_index(conn, partition)

    def plan(_: PartitionStats) -> IndexPlan | None:
        if existing is None or not existing.state.valid:
            return None
        return IndexPlan(Action.CREATE, existing.state.kind, existing.state.params, f"kept from {partition}")
    return plan


def policy_index(settings: IndexSettings) -> Callable[[PartitionStats], IndexPlan | None]:
    """For a new table: the index the policy wants for its rows (None: an exact scan)."""
    def plan(stats: PartitionStats) -> IndexPlan | None:
        decided = plan_index(stats, CurrentIndex(), settings)
        return decided if decided.action == Action.CREATE else None
    return plan


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
                done = f"{tuples_done:,}/{tuples_total:,} tuples" if tuples_total else f"{blocks_done:,}/{blocks_total:,} blocks"
                log(f"building {index_relname}: {phase}, {done}")


def apply_plan(conn: psycopg.Connection, partition: str, plan: IndexPlan, stats: PartitionStats,
               existing: ExistingIndex | None, log: ProgressLog = lambda _: None, *,
               pooled: bool = False) -> IndexOutcome:
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
                            _index_size(conn, existing.name) if existing else 0)
    if plan.action == Action.DROP:
        assert existing is not None
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(existing.name)))
        return IndexOutcome(partition, plan, stats.rows, None, 0.0, 0)

    name = index_name(partition, plan)
    if pooled:
        log(f"through a transaction pooler: building with the server's maintenance_work_mem "
            f"({conn.execute('SHOW maintenance_work_mem').fetchone()[0]}; "
            f"{_build_memory(stats, plan) // 1024**2}MB would fit the graph)")
    else:
        _set_build_resources(conn, stats, plan, local=False)
    statement = _create_index(name, partition, plan, concurrently=True)
    stop = threading.Event()
    conninfo = make_conninfo(conn.info.dsn, password=conn.info.password) if conn.info.password else conn.info.dsn
    watcher = threading.Thread(target=_watch_progress, args=(conninfo, name, log, stop), daemon=True)
    watcher.start()
    started = time.perf_counter()
    try:
        conn.execute(statement)
    except psycopg.Error:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
        raise
    finally:
        stop.set()
        watcher.join(timeout=10)
        if not pooled:
            conn.execute("RESET maintenance_work_mem")
            conn.execute("RESET max_parallel_maintenance_workers")
    seconds = time.perf_counter() - started
    valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)).fetchone()
    if not valid or not valid[0]:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
        raise DatabaseSetupError(f"index {name} on {partition} came out invalid and was dropped; rerun the index step")
    _record_build(conn, name, stats, plan)
    if existing is not None:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(existing.name)))
    log(f"built {name} ({plan.kind.value} {plan.params_dict}) on {stats.rows:,} rows in {seconds:.1f} s")
    return IndexOutcome(partition, plan, stats.rows, name, seconds, _index_size(conn, name))


def index_name(partition: str, plan: IndexPlan) -> str:
    # Microseconds: a block rebuilt right after it was built needs a name its old index does not hold.
    return f"{partition}_{plan.kind.value}_{time.time_ns() // 1000}"


def _build_memory(stats: PartitionStats, plan: IndexPlan) -> int:
    """maintenance_work_mem that holds the whole graph, within MAX_BUILD_MEMORY."""
    return min(MAX_BUILD_MEMORY, max(64 * 1024**2, hnsw_build_bytes(stats.rows, stats.dim, plan.params_dict.get("m", 16))))


def _set_build_resources(conn: psycopg.Connection, stats: PartitionStats, plan: IndexPlan, *, local: bool) -> None:
    scope = sql.SQL("SET LOCAL" if local else "SET")
    workers = max(0, min(7, (os.cpu_count() or 2) - 1))
    conn.execute(sql.SQL("{} maintenance_work_mem = {}").format(scope, sql.Literal(f"{_build_memory(stats, plan) // 1024**2}MB")))
    conn.execute(sql.SQL("{} max_parallel_maintenance_workers = {}").format(scope, sql.Literal(workers)))


def _create_index(name: str, table: str, plan: IndexPlan, *, concurrently: bool) -> sql.Composed:
    with_params = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.SQL(k), sql.Literal(v)) for k, v in plan.params)
    return sql.SQL("CREATE INDEX {concurrently}{name} ON {table} USING {am} (embedding vector_cosine_ops) WITH ({params})").format(
        concurrently=sql.SQL("CONCURRENTLY " if concurrently else ""), name=sql.Identifier(name),
        table=sql.Identifier(table), am=sql.SQL(plan.kind.value), params=with_params)


def _record_build(conn: psycopg.Connection, name: str, stats: PartitionStats, plan: IndexPlan) -> None:
    """What the policy reads back next time: rows and model at build time, search parameters."""
    conn.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(
        sql.Identifier(name), sql.Literal(json.dumps({"rows": stats.rows, "model_id": stats.model_id,
                                                     "search": dict(plan.search_params)}))))


def build_on_new_table(conn: psycopg.Connection, table: str, partition: str, plan: IndexPlan,
                       stats: PartitionStats, log: ProgressLog = lambda _: None) -> str:
    """Build the plan's index on a table no reader sees yet (a partition being rebuilt), inside the
    caller's transaction: no CONCURRENTLY needed, and SET LOCAL settings hold through a pooler too.
    ``partition`` is the name the table will have, which names the index."""
    name = index_name(partition, plan)
    _set_build_resources(conn, stats, plan, local=True)
    started = time.perf_counter()
    conn.execute(_create_index(name, table, plan, concurrently=False))
    _record_build(conn, name, stats, plan)
    log(f"built {name} ({plan.kind.value} {plan.params_dict}) on {stats.rows:,} rows in "
        f"{time.perf_counter() - started:.1f} s")
    return name


def _index_size(conn: psycopg.Connection, name: str) -> int:
    return int(conn.execute("SELECT coalesce(pg_relation_size(to_regclass(%s)), 0)", (name,)).fetchone()[0])


def maintain_partition(conn: psycopg.Connection, partition: str, settings: IndexSettings = IndexSettings(),
                       log: ProgressLog = lambda _: None, *, pooled: bool = False) -> IndexOutcome:
    stats = partition_stats(conn, partition)
    existing = existing_vector_index(conn, partition)
    plan = plan_index(stats, existing.state if existing else CurrentIndex(), settings)
    log(f"{partition}: {plan.action.value} {plan.kind.value} — {plan.reason}")
    return apply_plan(conn, partition, plan, stats, existing, log, pooled=pooled)


@dataclass(frozen=True)
class PartitionUpkeep:
    """One partition after ``upkeep``: what was done to its index and how healthy it is now."""
    outcome: IndexOutcome
    recall_at_10: float | None  # None: exact scans, nothing to measure
    invalid_index: str | None
    insane_vectors: int


def upkeep(conn: psycopg.Connection, partition: str, settings: IndexSettings, dim: int, *, recall_samples: int = 20,
           log: ProgressLog = lambda _: None, pooled: bool = False) -> PartitionUpkeep | None:
    """Maintain the partition's index, then measure its recall and check its index and vectors. None
    when a concurrent run replaced the partition after the caller listed it (parallel backfills): a
    sealed or trimmed block came with its index, and a reloaded day is indexed by the run that loaded it."""
    try:
        outcome = maintain_partition(conn, partition, settings, log=log, pooled=pooled)
        recall = None
        if outcome.index_name:
            tuning = dict(outcome.plan.search_params)
            recall = recall_at_k(conn, partition, k=10, samples=recall_samples,
                                 ef_search=tuning.get("ef_search", 64), probes=tuning.get("probes", 10))
        existing = existing_vector_index(conn, partition)
        insane = insane_vectors(conn, partition, dim)
    except psycopg.errors.UndefinedTable:
        log(f"{partition} was replaced by a concurrent run while this one worked; left to that run")
        return None
    invalid = existing.name if existing and not existing.state.valid else None
    return PartitionUpkeep(outcome, recall, invalid, insane)


def search_settings(conn: psycopg.Connection, ef_search: int, probes: int, *, iterative: bool = True) -> None:
    """Session settings for ANN search, inside the caller's transaction: pgvector 0.8 iterative scans
    keep fetching candidates until filters are satisfied, so filtered queries are not starved."""
    # Exact-scanned days are sorted whole under the Merge Append, rows ~1.6 kB wide with their vectors:
    # a 20k-row day needs ~32 MB to sort in memory instead of spilling to disk.
    conn.execute("SET LOCAL work_mem = '64MB'")
    conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
    conn.execute(sql.SQL("SET LOCAL ivfflat.probes = {}").format(sql.Literal(probes)))
    if iterative:
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        conn.execute("SET LOCAL ivfflat.iterative_scan = relaxed_order")


def recall_at_k(conn: psycopg.Connection, partition: str, k: int = 10, samples: int = 20,
                ef_search: int = 64, probes: int = 10, seed: float = 0.42) -> float:
    """Mean overlap of indexed top-k with exact top-k, over ``samples`` stored vectors used as queries."""
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
            search_settings(conn, ef_search, probes, iterative=False)
            approx = {r[0] for r in conn.execute(top, (query, k))}
        overlaps.append(len(exact & approx) / max(1, len(exact)))
    return float(np.mean(overlaps)) if overlaps else 1.0


def insane_vectors(conn: psycopg.Connection, partition: str, dim: int) -> int:
    """Rows whose vector has the wrong dimension or zero length (pgvector itself refuses NaN and Inf)."""
    return int(conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE vector_dims(embedding) <> %s OR vector_norm(embedding) = 0").format(
            sql.Identifier(partition)), (dim,)).fetchone()[0])
