"""Searching as principals under row-level security, side by side with searching unrestricted.

A synthetic store of ``--size`` chunks (clustered 384-d vectors over ``--days`` days, sealed into
blocks with HNSW indexes as the index policy decides, as in forget_benchmark), whose documents are
readable by ``group:all``; 1% of them also by ``group:few`` and 0.1% by ``group:rare``. The same
nearest-neighbour queries (k=10) run as the owner (no row-level security), as ``group:all`` (the
policies' cost alone), as ``group:few`` (1% readable) and as ``group:rare`` (0.1%): p50 and p95 per
caller, the ratio to the unrestricted p50, and whether every query still returned k hits (pgvector's
iterative index scans keep fetching candidates until enough rows pass the policies). A search as
principals takes the plan its readable share picks (storage/readable_search.py: an exact search over
few readable chunks, else the index walk); the restricted callers also run with the other plan forced,
and the 1% caller once more with its share counted for every search (a caller's later searches reuse it).
Every hit is checked to be readable by its caller.

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
from benchmarks.server import benchmark_main, drop_scratch, existing_scratch, scratch_settings
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.query.request import request
from pipeline.query.service import SearchService
from pipeline.records import ModelInfo
from pipeline.storage import access, catalog, connections, days, model_registry, readable_search, retention
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
    # Before any vector index exists: every chunk's readers change once here (migration 0015's triggers),
    # which with the indexes built would insert a new entry per chunk into its HNSW graph.
    set_readers(conn)
    sealing.seal_days(conn, today, retention.oldest_kept_day(today, day_count + 1), LayoutSettings(block_days=block_days),
                      policy)
    for part in catalog.partitions(conn):
        if not catalog.existing_vector_index(conn, part.table):
            builds.maintain_partition(conn, part.table, policy)
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


def time_readers_change(conn: psycopg.Connection, every: int = 1000) -> str:
    """Grant ``group:temp`` on one document in ``every``, then revoke it, in the indexed store: what a
    sidecar edit costs now that every chunk of a changed version is rewritten (its HNSW entry included)."""
    changed = "split_part(split_part(doc_id, '-', 2), '.', 1)::int %% %s = 7"
    timings = []
    for statement in (f"UPDATE documents SET readers = readers || '{{group:temp}}' WHERE {changed}",
                      f"UPDATE documents SET readers = array_remove(readers, 'group:temp') WHERE {changed}"):
        started = time.perf_counter()
        with conn.transaction():
            versions = conn.execute(statement, (every,)).rowcount
        timings.append(time.perf_counter() - started)
    chunks = int(conn.execute(f"SELECT count(*) FROM chunks WHERE {changed}", (every,)).fetchone()[0])
    return (f"readers of {versions:,} document versions ({chunks:,} chunks) changed in the indexed store: "
            f"grant {timings[0]:.1f} s, revoke {timings[1]:.1f} s ({chunks / statistics.mean(timings):,.0f} chunks/s)")


def readable(doc_id: str, principals: Sequence[str] | None) -> bool:
    number = int(doc_id.split("-")[1].split(".")[0])
    groups = {"group:all", *(["group:few"] if number % 100 == 0 else []), *(["group:rare"] if number % 1000 == 0 else [])}
    return principals is None or bool(groups & set(principals))


Row = tuple[str, Sequence[str] | None, str | None]  # label, principals, the plan forced (None: the probe's)
FORCED = {None: readable_search.EXACT_MAX_READABLE_CHUNKS, "index walk": 0, "exact": 10**9,
          "probe every search": readable_search.EXACT_MAX_READABLE_CHUNKS}
REUSE = readable_search.SHARE_REUSE_SECONDS


def force(forced: str | None) -> None:
    """The plan a row forces, and whether it counts the caller's share for every search (the first
    search of a caller does; later ones reuse it: readable_search.SHARE_REUSE_SECONDS)."""
    readable_search.EXACT_MAX_READABLE_CHUNKS = FORCED[forced]
    readable_search.SHARE_REUSE_SECONDS = 0 if forced == "probe every search" else REUSE


def benchmark_rows(conn: psycopg.Connection) -> list[Row]:
    """Every caller with the plan its probe picks, then each restricted caller with the other plan
    forced (one run of each plan per query and caller: a plan run twice for a query finds its pages
    cached the second time)."""
    others: list[Row] = []
    for label, principals in CALLERS.items():
        if principals is not None and principals != ["group:all"]:
            other = "index walk" if plan_of(conn, principals).startswith("exact") else "exact"
            others.append((f"{label.split(' ')[0]}, {'walk' if other == 'index walk' else other}", principals, other))
    counted: list[Row] = [("group:few, probe each", ["group:few"], "probe every search")]
    return [*((label, principals, None) for label, principals in CALLERS.items()), *others, *counted]


def plan_of(conn: psycopg.Connection, principals: Sequence[str] | None) -> str:
    """Which plan a vector search as ``principals`` takes (storage/readable_search.py)."""
    if principals is None:
        return "index walk (no probe)"
    with access.acting_as(conn, principals):
        share = readable_search.readable_share(conn)
    if share.estimated:
        return f"index walk (no probe: ~{share.chunks:,} chunks expected)"
    return f"{'exact' if share.exact else 'index walk'} (probe: {share.chunks:,} chunks)"


def run_queries(service: SearchService, queries: np.ndarray, k: int,
                table: list[Row]) -> dict[str, tuple[list[float], int, int]]:
    """Per row: milliseconds per query, queries with fewer than k hits, hits the caller may not read.
    Each query runs for every row in turn, so a machine shared with other work slows them alike, starting
    with each row in turn."""
    figures: dict[str, tuple[list[float], int, int]] = {label: ([], 0, 0) for label, _, _ in table}
    wanted = request("synthetic query", k=k, mode="vector")
    for n, vector in enumerate(queries):
        # Each row goes first for an equal share of the queries: the first row to search a query reads its
        # pages from disk or the OS cache, the others find them in shared buffers.
        for label, principals, forced in table[n % len(table):] + table[:n % len(table)]:
            force(forced)
            started = time.perf_counter()
            hits = service.search(wanted, vector=vector, principals=principals).hits
            timings, short, leaked = figures[label]
            timings.append((time.perf_counter() - started) * 1000)
            figures[label] = (timings, short + (len(hits) < k),
                              leaked + sum(not readable(h.doc_id, principals) for h in hits))
    force(None)
    return figures


def report(conn: psycopg.Connection, figures: dict[str, tuple[list[float], int, int]], table: list[Row]) -> list[str]:
    """Print the table; the failures (leaks, short answers where k readable chunks exist)."""
    print(f"{'caller':<20} {'p50 ms':>8} {'p95 ms':>8} {'vs owner':>9} {'short':>6} {'leaked':>7}  plan")
    base = statistics.median(figures[table[0][0]][0])
    failures = []
    for label, principals, forced in table:
        timings, short, leaked = figures[label]
        p50 = statistics.median(timings)
        p95 = sorted(timings)[int(0.95 * (len(timings) - 1))]
        print(f"{label:<20} {p50:>8.2f} {p95:>8.2f} {p50 / base:>8.2f}x {short:>6} {leaked:>7}  "
              f"{forced + ' (forced)' if forced in ('exact', 'index walk') else plan_of(conn, principals)}", flush=True)
        if leaked:
            failures.append(f"{label}: {leaked} hits it may not read")
        if short and principals != ["group:rare"]:
            failures.append(f"{label}: {short} queries returned fewer than k hits")
    return failures


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="chunks in the store")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--block-days", type=int, default=LayoutSettings.block_days)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exact-max-rows", type=int, default=IndexSettings.exact_max_rows)
    parser.add_argument("--reuse", action="store_true", help="keep the store after the run and reuse one kept earlier")
    args = smoke.parse_args(parser, {"size": 6000, "days": 3, "block_days": 2, "queries": 20, "exact_max_rows": 500})
    policy = IndexSettings(exact_max_rows=args.exact_max_rows)
    kept = existing_scratch(DATABASE) if args.reuse else None
    settings = kept or scratch_settings(DATABASE, MODEL.dim)
    try:
        with connections.connect(settings) as conn:
            started = time.perf_counter()
            if kept is None:
                documents = build_store(conn, args.size, args.days, args.block_days, policy)
            else:
                documents = (args.size // args.days) // 4
            rows = sum(p.rows for p in catalog.partitions(conn))
            indexed = sum(1 for p in catalog.partitions(conn) if catalog.existing_vector_index(conn, p.table))
            print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rows:,} chunks of {documents * args.days:,} "
                  f"documents in {len(catalog.partitions(conn))} partitions ({indexed} with HNSW), built in "
                  f"{time.perf_counter() - started:.0f} s; {args.queries} nearest-neighbour queries, k={args.k}",
                  flush=True)
            service = SearchService.over(conn)
            queries = clustered(args.queries, seed=424_242)
            table = benchmark_rows(conn)
            run_queries(service, clustered(max(1, len(queries) // 10), seed=7), args.k, table)  # warm the caches
            failures = report(conn, run_queries(service, queries, args.k, table), table)
            print(time_readers_change(conn), flush=True)
            if failures:
                raise SystemExit("permissions_benchmark: " + "; ".join(failures))
    finally:
        if not args.reuse:
            drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
