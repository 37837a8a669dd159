"""Searching as principals under row-level security, side by side with searching unrestricted.

A synthetic store of ``--size`` chunks (clustered 384-d vectors over ``--days`` days, sealed into
blocks with HNSW indexes as the index policy decides, as in forget_benchmark), whose documents are
readable by ``group:all``; 1% of them also by ``group:few`` and 0.1% by ``group:rare``. The same
nearest-neighbour queries (k=10) run as the owner (no row-level security), as ``group:all`` (the
policies' cost alone), as ``group:few`` (1% readable) and as ``group:rare`` (0.1%): p50 and p95 per
caller, the ratio to the unrestricted p50, and whether every query still returned k hits (pgvector's
iterative index scans keep fetching candidates until enough rows pass the policies). Every hit is
checked to be readable by its caller.

Usage: ``python -m benchmarks.permissions_benchmark [--size 1000000] [--queries 200]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Sequence

import numpy as np
import psycopg

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.query.request import request
from pipeline.query.service import SearchService
from pipeline.records import ModelInfo
from pipeline.storage import catalog, connections, days, model_registry, retention
from pipeline.storage.layout import LayoutSettings
from tests.support.vectors import clustered, synthetic_day

DATABASE = "docvec_bench_permissions"
MODEL = ModelInfo(name="synthetic-clustered", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")
CALLERS: dict[str, Sequence[str] | None] = {"owner (no RLS)": None, "group:all (100%)": ["group:all"],
                                            "group:few (1%)": ["group:few"], "group:rare (0.1%)": ["group:rare"]}


def build_store(conn: psycopg.Connection, size: int, day_count: int, block_days: int, policy: IndexSettings) -> int:
    """Load, seal and index the store; give its documents their readers. Returns the documents."""
    model_id = model_registry.register(conn, MODEL).id
    today = dt.date.today()
    per_day = size // day_count
    documents = max(1, per_day // 4)
    for n in range(day_count):
        day = today - dt.timedelta(days=day_count - 1 - n)
        days.replace_day(conn, synthetic_day(day, clustered(per_day, seed=n), MODEL.name, MODEL.revision,
                                             documents=documents, doc_prefix=f"day{n}doc"), model_id)
    sealing.seal_days(conn, today, retention.oldest_kept_day(today, day_count + 1), LayoutSettings(block_days=block_days),
                      policy)
    for part in catalog.partitions(conn):
        if not catalog.existing_vector_index(conn, part.table):
            builds.maintain_partition(conn, part.table, policy)
    set_readers(conn)
    conn.execute("VACUUM ANALYZE")
    return documents


def set_readers(conn: psycopg.Connection) -> None:
    """Every document readable by group:all; one in 100 also by group:few, one in 1,000 by group:rare."""
    conn.execute(
        """
        UPDATE documents d SET readers = ARRAY['group:all']
            || CASE WHEN n.number % 100 = 0 THEN ARRAY['group:few'] ELSE '{}' END
            || CASE WHEN n.number % 1000 = 0 THEN ARRAY['group:rare'] ELSE '{}' END
        FROM (SELECT doc_id, split_part(split_part(doc_id, '-', 2), '.', 1)::int AS number FROM documents) n
        WHERE n.doc_id = d.doc_id
        """)


def readable(doc_id: str, principals: Sequence[str] | None) -> bool:
    number = int(doc_id.split("-")[1].split(".")[0])
    groups = {"group:all", *(["group:few"] if number % 100 == 0 else []), *(["group:rare"] if number % 1000 == 0 else [])}
    return principals is None or bool(groups & set(principals))


def run_queries(service: SearchService, queries: np.ndarray, principals: Sequence[str] | None,
                k: int) -> tuple[list[float], int, int]:
    """Milliseconds per query, queries with fewer than k hits, hits the caller may not read."""
    timings, short, leaked = [], 0, 0
    wanted = request("synthetic query", k=k, mode="vector")
    for vector in queries:
        started = time.perf_counter()
        hits = service.search(wanted, vector=vector, principals=principals).hits
        timings.append((time.perf_counter() - started) * 1000)
        short += len(hits) < k
        leaked += sum(not readable(h.doc_id, principals) for h in hits)
    return timings, short, leaked


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="chunks in the store")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--block-days", type=int, default=LayoutSettings.block_days)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exact-max-rows", type=int, default=IndexSettings.exact_max_rows)
    args = smoke.parse_args(parser, {"size": 6000, "days": 3, "block_days": 2, "queries": 20, "exact_max_rows": 500})
    policy = IndexSettings(exact_max_rows=args.exact_max_rows)
    settings = scratch_settings(DATABASE, MODEL.dim)
    try:
        with connections.connect(settings) as conn:
            started = time.perf_counter()
            documents = build_store(conn, args.size, args.days, args.block_days, policy)
            rows = sum(p.rows for p in catalog.partitions(conn))
            indexed = sum(1 for p in catalog.partitions(conn) if catalog.existing_vector_index(conn, p.table))
            print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rows:,} chunks of {documents * args.days:,} "
                  f"documents in {len(catalog.partitions(conn))} partitions ({indexed} with HNSW), built in "
                  f"{time.perf_counter() - started:.0f} s; {args.queries} nearest-neighbour queries, k={args.k}",
                  flush=True)
            service = SearchService.over(conn)
            queries = clustered(args.queries, seed=424_242)
            run_queries(service, queries[: max(1, len(queries) // 10)], None, args.k)  # warm the caches
            print(f"{'caller':<20} {'p50 ms':>8} {'p95 ms':>8} {'vs owner':>9} {'short':>6} {'leaked':>7}")
            base = None
            failures = []
            for label, principals in CALLERS.items():
                timings, short, leaked = run_queries(service, queries, principals, args.k)
                p50 = statistics.median(timings)
                p95 = sorted(timings)[int(0.95 * (len(timings) - 1))]
                base = base or p50
                print(f"{label:<20} {p50:>8.2f} {p95:>8.2f} {p50 / base:>8.2f}x {short:>6} {leaked:>7}", flush=True)
                if leaked:
                    failures.append(f"{label}: {leaked} hits it may not read")
                if short and principals != ["group:rare"]:
                    failures.append(f"{label}: {short} queries returned fewer than k hits")
            if failures:
                raise SystemExit("permissions_benchmark: " + "; ".join(failures))
    finally:
        drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
