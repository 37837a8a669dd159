"""The SQL of pgvector indexes on partitions of ``chunks``: what an index is (kind, build parameters,
the search parameters it was checked with), how one is created and recorded, and the session settings
a search runs with. Which index a partition should have is the indexing policy's call, not this
module's."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql

from pipeline.storage.host import machine_memory
from pipeline.storage.queries import value
from pipeline.storage.vector_storage import stored_column

ProgressLog = Callable[[str], None]
MAX_BUILD_MEMORY = 8 * 1024**3
# pgvector's defaults; the policy records what each index was checked with (see IndexSpec.search_params).
DEFAULT_EF_SEARCH = 40
DEFAULT_PROBES = 1


def no_log(_: str) -> None:
    """A ProgressLog that drops its lines."""


class IndexKind(StrEnum):
    NONE = "none"
    HNSW = "hnsw"
    IVFFLAT = "ivfflat"


Params = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class IndexSpec:
    """An index to build: its kind, its build parameters, and the search parameters it is used (and its
    recall checked) with: ``ef_search`` for HNSW, ``probes`` for IVFFlat."""
    kind: IndexKind
    params: Params
    search_params: Params = ()

    @property
    def params_dict(self) -> dict[str, int]:
        return dict(self.params)


@dataclass(frozen=True)
class IndexState:
    """A partition's vector index as the catalog and its recorded build comment describe it."""
    kind: IndexKind = IndexKind.NONE
    valid: bool = True
    built_rows: int = 0
    model_id: int | None = None
    params: Params = ()
    search_params: Params = ()
    recall_at_10: float | None = None  # measured with ``search_params`` after the build; None: not yet


@dataclass(frozen=True)
class ExistingIndex:
    name: str
    state: IndexState

    def spec(self) -> IndexSpec:
        return IndexSpec(self.state.kind, self.state.params, self.state.search_params)


@dataclass(frozen=True)
class PartitionStats:
    rows: int
    dim: int
    model_id: int
    maintenance_work_mem_bytes: int = field(default=0)


def hnsw_build_bytes(rows: int, dim: int, m: int) -> int:
    """What an HNSW build wants in maintenance_work_mem to stay in memory: vectors plus 2m neighbour
    links on layer 0 (pgvector keeps both per element), with a margin."""
    return int(rows * (dim * 4 + 2 * m * 8 + 64) * 1.2)


def build_memory_allowance() -> int:
    """What one index build may take: a quarter of this machine's memory, at most MAX_BUILD_MEMORY (the
    server is assumed local or alike; set the policy's preferred kind to ivfflat where it is smaller)."""
    return min(MAX_BUILD_MEMORY, (machine_memory() or 4 * MAX_BUILD_MEMORY) // 4)


def partition_stats(conn: psycopg.Connection[Any], table: str) -> PartitionStats:
    row = conn.execute(
        sql.SQL("SELECT count(*), max(vector_dims(embedding)), min(model_id) FROM {}").format(sql.Identifier(table))
    ).fetchone()
    rows, dim, model_id = row if row else (0, 0, 0)
    return PartitionStats(rows=int(rows), dim=int(dim or 0), model_id=int(model_id or 0),
                          maintenance_work_mem_bytes=build_memory_allowance())


def parse_index(name: str, am: str, valid: bool, comment: str | None, options: list[str] | None) -> ExistingIndex:
    """An index from its catalog row: access method, validity, reloptions and docvec's build comment."""
    recorded = json.loads(comment) if comment and comment.startswith("{") else {}
    params = tuple(sorted((k, int(v)) for k, v in (o.split("=", 1) for o in options or [])))
    search = tuple(sorted((k, int(v)) for k, v in (recorded.get("search") or {}).items()))
    return ExistingIndex(name, IndexState(kind=IndexKind(am), valid=bool(valid), built_rows=int(recorded.get("rows", 0)),
                                          model_id=recorded.get("model_id"), params=params, search_params=search,
                                          recall_at_10=recorded.get("recall_at_10")))


def index_name(partition: str, kind: IndexKind) -> str:
    # Microseconds: a block rebuilt right after it was built needs a name its old index does not hold.
    return f"{partition}_{kind.value}_{time.time_ns() // 1000}"


def build_memory(stats: PartitionStats, spec: IndexSpec) -> int:
    """maintenance_work_mem that holds the whole graph, within MAX_BUILD_MEMORY."""
    return min(MAX_BUILD_MEMORY, max(64 * 1024**2, hnsw_build_bytes(stats.rows, stats.dim, spec.params_dict.get("m", 16))))


def set_build_resources(conn: psycopg.Connection[Any], stats: PartitionStats, spec: IndexSpec, *, local: bool) -> None:
    scope = sql.SQL("SET LOCAL" if local else "SET")
    workers = max(0, min(7, (os.cpu_count() or 2) - 1))
    conn.execute(sql.SQL("{} maintenance_work_mem = {}").format(
        scope, sql.Literal(f"{build_memory(stats, spec) // 1024**2}MB")))
    conn.execute(sql.SQL("{} max_parallel_maintenance_workers = {}").format(scope, sql.Literal(workers)))


def reset_build_resources(conn: psycopg.Connection[Any]) -> None:
    conn.execute("RESET maintenance_work_mem")
    conn.execute("RESET max_parallel_maintenance_workers")


def create_index_sql(name: str, table: str, spec: IndexSpec, *, concurrently: bool,
                     opclass: str = "vector_cosine_ops") -> sql.Composed:
    """``opclass``: the column's cosine operator class (``VectorColumn.opclass``; partitions of ``chunks``
    take it from the catalog, see ``create_index_concurrently``)."""
    with_params = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.SQL(k), sql.Literal(v)) for k, v in spec.params)
    statement = "CREATE INDEX {concurrently}{name} ON {table} USING {am} (embedding {opclass}) WITH ({params})"
    return sql.SQL(statement).format(
        concurrently=sql.SQL("CONCURRENTLY " if concurrently else ""), name=sql.Identifier(name),
        table=sql.Identifier(table), am=sql.SQL(spec.kind.value), opclass=sql.Identifier(opclass), params=with_params)


def create_index_concurrently(conn: psycopg.Connection[Any], name: str, table: str, spec: IndexSpec) -> None:
    """Build the index while loads and searches go on (needs an autocommit connection), with the operator
    class of the type the table stores its vectors as."""
    opclass = stored_column(conn, table).opclass
    conn.execute(create_index_sql(name, table, spec, concurrently=True, opclass=opclass))


def drop_index_concurrently(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))


def is_valid(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)).fetchone()
    return bool(row and row[0])


def record_build(conn: psycopg.Connection[Any], name: str, stats: PartitionStats, spec: IndexSpec) -> None:
    """What the policy and search read back later: rows and model at build time, search parameters."""
    conn.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(
        sql.Identifier(name), sql.Literal(json.dumps({"rows": stats.rows, "model_id": stats.model_id,
                                                     "search": dict(spec.search_params)}))))


def record_recall(conn: psycopg.Connection[Any], name: str, recall_at_10: float) -> None:
    """Add the recall@10 measured on the index to its build record (``record_build`` starts a new
    record, without one, whenever what it holds changes)."""
    comment = value(conn, "SELECT obj_description(to_regclass(%s), 'pg_class')", (name,))
    recorded = json.loads(comment) if comment and comment.startswith("{") else {}
    conn.execute(sql.SQL("COMMENT ON INDEX {} IS {}").format(
        sql.Identifier(name), sql.Literal(json.dumps({**recorded, "recall_at_10": round(recall_at_10, 4)}))))


def build_on_new_table(conn: psycopg.Connection[Any], table: str, partition: str, spec: IndexSpec,
                       stats: PartitionStats, log: ProgressLog = no_log) -> str:
    """Build ``spec`` on a table no reader sees yet (a partition being rebuilt), inside the caller's
    transaction: no CONCURRENTLY needed, and SET LOCAL settings hold through a pooler too.
    ``partition`` is the name the table will have, which names the index."""
    name = index_name(partition, spec.kind)
    set_build_resources(conn, stats, spec, local=True)
    started = time.perf_counter()
    conn.execute(create_index_sql(name, table, spec, concurrently=False, opclass=stored_column(conn, table).opclass))
    record_build(conn, name, stats, spec)
    log(f"built {name} ({spec.kind.value} {spec.params_dict}) on {stats.rows:,} rows in "
        f"{time.perf_counter() - started:.1f} s")
    return name


def index_size(conn: psycopg.Connection[Any], name: str) -> int:
    return int(value(conn, "SELECT coalesce(pg_relation_size(to_regclass(%s)), 0)", (name,)))


@dataclass(frozen=True)
class AnnSettings:
    """What an approximate search runs with: the largest ef_search and probes any index it may walk was
    checked with (one session setting serves every partition), unless the caller asks for more or less."""
    ef_search: int = DEFAULT_EF_SEARCH
    probes: int = DEFAULT_PROBES


# A search over several HNSW-indexed partitions (a sealed layout's blocks and newest days) merges each
# index's own nearest rows, so each index needs to find only its share of the top k. Measured at 1M rows
# over 7 partitions (benchmarks/RESULTS.md, "the walked ef_search"), the recorded ef_search divided by the
# square root of the indexes walked kept recall@10 at a single index's. But the indexes are rarely alike:
# one block holding 97% of the rows (LayoutSettings.window_block) holds almost all of the top k, and at
# 64/sqrt(2) its graph fell to recall 0.934 (RESULTS, "One block for the window"). So the divisor counts
# the indexes as their rows weigh: the rows walked over the largest index's rows, which is the number of
# indexes when they are alike and near 1 when one dominates. The floor keeps each graph's own search from
# getting too narrow to navigate.
WALKED_EF_FLOOR = 16


def walked_ef_search(recorded: int, rows_per_index: Sequence[int]) -> int:
    """The ef_search for a search that walks HNSW indexes over ``rows_per_index`` rows each, whose recall
    was checked at ``recorded``: ``recorded`` for one, ``recorded / sqrt(rows / largest index's rows)`` (at
    least WALKED_EF_FLOOR, at most ``recorded``) for more; where no index knows its rows, every index
    counts as one."""
    if len(rows_per_index) <= 1:
        return recorded
    largest = max(rows_per_index)
    alike = sum(rows_per_index) / largest if largest > 0 else len(rows_per_index)
    return min(recorded, max(WALKED_EF_FLOOR, math.ceil(recorded / math.sqrt(alike))))


def apply_ann_settings(conn: psycopg.Connection[Any], settings: AnnSettings, *, iterative: bool = True) -> None:
    """Session settings for ANN search, inside the caller's transaction: pgvector 0.8 iterative scans
    keep fetching candidates until filters are satisfied, so filtered queries are not starved."""
    # Exact-scanned days are sorted whole under the Merge Append, rows ~1.6 kB wide with their vectors:
    # a 20k-row day needs ~32 MB to sort in memory instead of spilling to disk.
    settings_wanted = {"work_mem": "64MB", "hnsw.ef_search": str(settings.ef_search),
                       "ivfflat.probes": str(settings.probes)}
    if iterative:
        settings_wanted |= {"hnsw.iterative_scan": "relaxed_order", "ivfflat.iterative_scan": "relaxed_order"}
    # One statement, not a SET LOCAL each: every search pays these round trips (one instead of five took
    # about 0.4 ms off a 1M-row vector search's 9 ms, benchmarks/RESULTS.md). set_config(..., true) is SET LOCAL.
    conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings_wanted.items())))
