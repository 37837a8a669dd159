"""Purging one day: docvec's DETACH + DROP of a day partition vs the seed-style DELETE (+ the VACUUM it
owes), at N and 10·N rows per day, side by side in one run.

Usage: ``python -m benchmarks.retention_benchmark [--rows 10000] [--with-hnsw]``
``--with-hnsw`` adds an HNSW index to the flat table first (slow to build: keep --rows small), to show
what the VACUUM after a DELETE costs when pgvector must repair its graph.
Works in a scratch database (``docvec_bench_retention``) on the configured server, dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.storage import connections
from pipeline.storage.loader import copy_rows

DATABASE = "docvec_bench_retention"

DIM = 384
BASE_DAY = dt.date(2026, 1, 10)


def vectors(n: int, seed: int) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def fill(conn, table: str, day: dt.date, n: int, seed: int) -> None:
    rows = ((f"{day}-{i}", day, v) for i, v in enumerate(vectors(n, seed)))
    with conn.transaction():
        copy_rows(conn.cursor(), table, ["id", "ingest_date", "embedding"], ["text", "date", "vector"], rows)


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="N: rows of the small day (the large one has 10·N)")
    parser.add_argument("--with-hnsw", action="store_true")
    args = smoke.parse_args(parser, {"rows": 200})
    n = args.rows
    days = {"N": (BASE_DAY, n), "10N": (BASE_DAY + dt.timedelta(days=1), 10 * n)}
    other = BASE_DAY + dt.timedelta(days=2)
    settings = scratch_settings(DATABASE)
    with connections.connect(settings) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_ret_parted, bench_ret_flat")
        conn.execute("CREATE TABLE bench_ret_parted (id text, ingest_date date, embedding vector(384)) "
                     "PARTITION BY RANGE (ingest_date)")
        conn.execute("CREATE TABLE bench_ret_flat (id text, ingest_date date, embedding vector(384))")
        conn.execute("CREATE INDEX ON bench_ret_flat (ingest_date)")
        try:
            for label, (day, rows) in [*days.items(), ("other", (other, 10 * n))]:
                part = f"bench_ret_p{day:%Y%m%d}"
                conn.execute(f"CREATE TABLE {part} PARTITION OF bench_ret_parted "
                             f"FOR VALUES FROM ('{day}') TO ('{day + dt.timedelta(days=1)}')")
                fill(conn, "bench_ret_parted", day, rows, seed=hash(label) % 1000)
                fill(conn, "bench_ret_flat", day, rows, seed=hash(label) % 1000)
            if args.with_hnsw:
                started = time.perf_counter()
                conn.execute("SET maintenance_work_mem = '1GB'")
                conn.execute("CREATE INDEX ON bench_ret_flat USING hnsw (embedding vector_cosine_ops)")
                print(f"(HNSW index on the flat table built in {time.perf_counter() - started:.1f} s)")
            conn.execute("ANALYZE bench_ret_parted")
            conn.execute("ANALYZE bench_ret_flat")
            results = {}
            for label, (day, rows) in days.items():
                part = f"bench_ret_p{day:%Y%m%d}"
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute(f"ALTER TABLE bench_ret_parted DETACH PARTITION {part}")
                    conn.execute(f"DROP TABLE {part}")
                drop = time.perf_counter() - started
                started = time.perf_counter()
                conn.execute("DELETE FROM bench_ret_flat WHERE ingest_date = %s", (day,))
                delete = time.perf_counter() - started
                started = time.perf_counter()
                conn.execute("VACUUM bench_ret_flat")
                vacuum = time.perf_counter() - started
                results[label] = (rows, drop, delete, vacuum)
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_ret_parted, bench_ret_flat")

    flat = "with" if args.with_hnsw else "without"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; flat table {flat} HNSW")
    print(f"{'day size':<10} {'rows':>9} {'DETACH+DROP':>12} {'DELETE':>10} {'VACUUM':>10} {'DELETE+VACUUM':>14}")
    for label, (rows, drop, delete, vacuum) in results.items():
        print(f"{label:<10} {rows:>9,} {drop:>11.4f}s {delete:>9.3f}s {vacuum:>9.3f}s {delete + vacuum:>13.3f}s")
    small, large = results["N"], results["10N"]
    print(f"ratio 10N/N, DETACH+DROP:    {large[1] / small[1]:6.2f}  (target ~1: flat)")
    print(f"ratio 10N/N, DELETE+VACUUM:  {(large[2] + large[3]) / (small[2] + small[3]):6.2f}")
    print(f"DELETE+VACUUM / DROP at 10N: {(large[2] + large[3]) / large[1]:6.1f}x")

    drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
