"""Vector index kinds side by side on clustered synthetic 384-d vectors (not embedded; clustered so
recall means something): build time, size, recall@10 and p50/p99 query latency for an exact scan,
HNSW and IVFFlat, at each size; then the partition-layout question: one index over all rows against
one index per partition, with partitions of 1 day or of ``--blocks`` days each (sealed multi-day blocks).

Usage: ``python -m benchmarks.index_benchmark [--sizes 10000 100000] [--queries 100] [--days 10] [--blocks 1 5]``
``--layout-only`` skips the single-table rows.
Works in a scratch database (``docvec_bench_index``) on the configured server, dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np
import psycopg
from psycopg import sql

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.indexing.policy import IndexKind, ivfflat_lists, ivfflat_probes
from pipeline.storage import connections
from pipeline.storage.loader import copy_rows
from pipeline.storage.vector_indexes import AnnSettings, IndexSpec, apply_ann_settings, create_index_sql
from tests.support.vectors import clustered

DATABASE = "docvec_bench_index"

DIM = 384


def load(conn: psycopg.Connection, table: str, vectors: np.ndarray, day: dt.date | None = None) -> None:
    with conn.transaction():
        copy_rows(conn.cursor(), table, ["id", "ingest_date", "embedding"], ["int8", "date", "vector"],
                  ((i, day or dt.date(2026, 1, 1), v) for i, v in enumerate(vectors)))
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def top_ids(conn, table: str, query: np.ndarray, k: int, exact: bool, ef: int, probes: int) -> tuple[list[int], float]:
    with conn.transaction():
        if exact:
            conn.execute("SET LOCAL enable_indexscan = off")
        else:
            apply_ann_settings(conn, AnnSettings(ef_search=ef, probes=probes), iterative=False)
        started = time.perf_counter()
        ids = [r[0] for r in conn.execute(
            sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT %s").format(sql.Identifier(table)), (query, k))]
    return ids, (time.perf_counter() - started) * 1000


def measure(conn, table: str, queries: np.ndarray, truth: list[set[int]], exact: bool, ef=64, probes=10):
    latencies, recalls = [], []
    for query, expected in zip(queries, truth, strict=True):
        ids, ms = top_ids(conn, table, query, 10, exact, ef, probes)
        latencies.append(ms)
        recalls.append(len(expected & set(ids)) / 10)
    return float(np.mean(recalls)), float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))


def build(conn, table: str, kind: IndexKind, rows: int) -> tuple[float, int, int]:
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {max(0, (os.cpu_count() or 2) - 1)}")
    params = (("m", 16), ("ef_construction", 64)) if kind == IndexKind.HNSW else (("lists", ivfflat_lists(rows)),)
    name = f"{table}_{kind.value}"
    started = time.perf_counter()
    conn.execute(create_index_sql(name, table, IndexSpec(kind, params), concurrently=False))
    seconds = time.perf_counter() - started
    size = conn.execute("SELECT pg_relation_size(%s)", (name,)).fetchone()[0]
    return seconds, int(size), ivfflat_probes(ivfflat_lists(rows))


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--days", type=int, default=10, help="days of data in the layout comparison")
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 5],
                        help="days per partition in the layout comparison (1 = one partition per day)")
    parser.add_argument("--layout-only", action="store_true", help="skip the single-table rows")
    args = smoke.parse_args(parser, {"sizes": [600], "queries": 5, "days": 3, "blocks": [1, 3]})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; clustered synthetic {DIM}-d vectors; "
          f"{args.queries} queries; k=10; HNSW m=16 ef_construction=64 ef_search=64; "
          "IVFFlat lists=rows/1000, probes=sqrt(lists)")
    print(f"{'rows':>9} {'method':<10} {'build s':>8} {'size MB':>8} {'recall@10':>9} {'p50 ms':>8} {'p99 ms':>8}")
    settings = scratch_settings(DATABASE)
    with connections.connect(settings) as conn:
        try:
            for rows in [] if args.layout_only else args.sizes:
                conn.execute("DROP TABLE IF EXISTS bench_index")
                conn.execute(f"CREATE TABLE bench_index (id int8, ingest_date date, embedding vector({DIM}))")
                conn.execute("ALTER TABLE bench_index ALTER COLUMN embedding SET STORAGE PLAIN")
                data = clustered(rows, seed=rows)
                load(conn, "bench_index", data)
                queries = clustered(args.queries, seed=rows + 1)
                truth = [set(top_ids(conn, "bench_index", q, 10, True, 0, 0)[0]) for q in queries]
                recall, p50, p99 = measure(conn, "bench_index", queries, truth, exact=True)
                print(f"{rows:>9,} {'exact':<10} {0:>8.1f} {0:>8.1f} {recall:>9.3f} {p50:>8.2f} {p99:>8.2f}", flush=True)
                for kind in (IndexKind.IVFFLAT, IndexKind.HNSW):
                    seconds, size, probes = build(conn, "bench_index", kind, rows)
                    recall, p50, p99 = measure(conn, "bench_index", queries, truth, exact=False, probes=probes)
                    print(f"{rows:>9,} {kind.value:<10} {seconds:>8.1f} {size / 1e6:>8.1f} {recall:>9.3f} "
                          f"{p50:>8.2f} {p99:>8.2f}", flush=True)
                    conn.execute(f"DROP INDEX bench_index_{kind.value}")

            rows = args.sizes[-1]
            per_day = rows // args.days
            data = clustered(rows, seed=rows)
            queries = clustered(args.queries, seed=rows + 1)
            truth: list[set[int]] | None = None
            first = dt.date(2026, 1, 1)
            for block_days in args.blocks:
                conn.execute("DROP TABLE IF EXISTS bench_layout")
                conn.execute(f"CREATE TABLE bench_layout (id int8, ingest_date date, embedding vector({DIM})) "
                             "PARTITION BY RANGE (ingest_date)")
                builds = []
                for b, start in enumerate(range(0, args.days, block_days)):
                    end = min(args.days, start + block_days)
                    lo, hi = first + dt.timedelta(days=start), first + dt.timedelta(days=end)
                    part = f"bench_layout_{b}"
                    conn.execute(f"CREATE TABLE {part} PARTITION OF bench_layout FOR VALUES FROM ('{lo}') TO ('{hi}')")
                    conn.execute(f"ALTER TABLE {part} ALTER COLUMN embedding SET STORAGE PLAIN")
                    for d in range(start, end):
                        with conn.transaction():
                            copy_rows(conn.cursor(), part, ["id", "ingest_date", "embedding"], ["int8", "date", "vector"],
                                      ((d * per_day + i, first + dt.timedelta(days=d), v)
                                       for i, v in enumerate(data[d * per_day:(d + 1) * per_day])))
                    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(part)))
                    builds.append(build(conn, part, IndexKind.HNSW, (end - start) * per_day)[0])
                if truth is None:
                    truth = [set(top_ids(conn, "bench_layout", q, 10, True, 0, 0)[0]) for q in queries]
                recall, p50, p99 = measure(conn, "bench_layout", queries, truth, exact=False)
                print(f"layout: {len(builds):>2} partitions of {block_days:>2} day(s) x {per_day:,} rows, one HNSW each: "
                      f"build {sum(builds):.1f} s (largest partition {max(builds):.1f} s), recall@10 {recall:.3f}, "
                      f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_index, bench_layout")

    drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
