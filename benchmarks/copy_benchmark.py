"""Loading the same 384-d chunk rows three ways, side by side in one run.

1. docvec's path: binary COPY (psycopg 3 ``set_types`` + pgvector's binary dumper) into a staging table
   created in the same transaction, with FREEZE — exactly what ``days.replace_day`` does;
2. psycopg 3 ``executemany`` INSERT (pipelined by psycopg);
3. one INSERT per row (what most hand-rolled loaders do).

Usage: ``python -m benchmarks.copy_benchmark [--rows 50000] [--per-row-rows 5000] [--repeats 3]``
Works in a scratch database (``docvec_bench_copy``) on the configured server, dropped afterwards.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import psycopg

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.storage import connections
from pipeline.storage.loader import copy_rows

DATABASE = "docvec_bench_copy"

DIM = 384
TABLE_SQL = "CREATE TABLE {name} (chunk_id text, text text, embedding vector(384))"


def make_rows(n: int, seed: int = 1) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = ["vector", "index", "partition", "copy", "chunk", "query", "recall", "latency"]
    return [(f"{i:032x}", " ".join(words[(i + j) % len(words)] for j in range(60)), vectors[i]) for i in range(n)]


def _fresh(conn: psycopg.Connection, name: str, in_transaction: bool) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    if not in_transaction:
        conn.execute(TABLE_SQL.format(name=name))
        conn.commit()


def load_copy(conn, rows, vectors_only=False) -> float:
    _fresh(conn, "bench_copy", in_transaction=True)
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(TABLE_SQL.format(name="bench_copy"))
        if vectors_only:
            copy_rows(conn.cursor(), "bench_copy", ["chunk_id", "embedding"], ["text", "vector"],
                      ((r[0], r[2]) for r in rows), freeze=True)
        else:
            copy_rows(conn.cursor(), "bench_copy", ["chunk_id", "text", "embedding"], ["text", "text", "vector"],
                      rows, freeze=True)
    return time.perf_counter() - started


def load_executemany(conn, rows) -> float:
    _fresh(conn, "bench_executemany", in_transaction=False)
    started = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.executemany("INSERT INTO bench_executemany (chunk_id, text, embedding) VALUES (%s, %s, %s)", rows)
    conn.commit()
    return time.perf_counter() - started


def load_per_row(conn, rows) -> float:
    _fresh(conn, "bench_per_row", in_transaction=False)
    started = time.perf_counter()
    for row in rows:
        conn.execute("INSERT INTO bench_per_row (chunk_id, text, embedding) VALUES (%s, %s, %s)", row)
    conn.commit()
    return time.perf_counter() - started


def table_bytes(conn, name: str) -> int:
    return int(conn.execute("SELECT pg_total_relation_size(%s)", (name,)).fetchone()[0])


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(repeats))


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--per-row-rows", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = smoke.parse_args(parser, {"rows": 200, "per_row_rows": 20, "repeats": 1})
    settings = scratch_settings(DATABASE)
    rows = make_rows(args.rows)
    # Not autocommit: each method commits once at its end, as a batch loader would.
    with connections.connect(settings, autocommit=False) as conn:
        server = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        wal = conn.execute("SHOW wal_level").fetchone()[0]
        try:
            copy_vec = best_of(args.repeats, lambda: load_copy(conn, rows, vectors_only=True))
            vec_bytes = table_bytes(conn, "bench_copy")
            copy_full = best_of(args.repeats, lambda: load_copy(conn, rows))
            full_bytes = table_bytes(conn, "bench_copy")
            many = best_of(args.repeats, lambda: load_executemany(conn, rows))
            per_row_rows = rows[: args.per_row_rows]
            per_row = load_per_row(conn, per_row_rows)
        finally:
            for name in ("bench_copy", "bench_executemany", "bench_per_row"):
                conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.commit()

    def line(label: str, n: int, seconds: float, size: int) -> float:
        rate = n / seconds
        megabytes_per_second = size / 1e6 / seconds * n / len(rows)
        print(f"{label:<44} {n:>8,} rows {seconds:>8.3f} s {rate:>11,.0f} rows/s {megabytes_per_second:>8.1f} MB/s")
        return rate

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, {__import__('os').cpu_count()} cores; "
          f"server: {server}, wal_level={wal}; median of {args.repeats}")
    print(f"{'method':<44} {'rows':>13} {'time':>10} {'rate':>18} {'MB/s':>13}")
    r_vec = line("binary COPY, id + vector (docvec path)", len(rows), copy_vec, vec_bytes)
    r_copy = line("binary COPY, id + text + vector (docvec path)", len(rows), copy_full, full_bytes)
    r_many = line("executemany INSERT (pipelined)", len(rows), many, full_bytes)
    r_row = line("one INSERT per row", len(per_row_rows), per_row, full_bytes)
    print(f"ratio COPY / executemany:      {r_copy / r_many:6.2f}x  (target >= 1.5x)")
    print(f"ratio COPY / per-row INSERT:   {r_copy / r_row:6.2f}x  (target >= 25x)")
    print(f"COPY vectors alone:            {r_vec:,.0f} rows/s  (target >= 150,000 rows/s)")

    drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
