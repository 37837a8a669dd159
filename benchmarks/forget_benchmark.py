"""Erasing one document (``docvec forget``) from stores of growing size, against rebuilding what holds it.

For each size: ``N`` synthetic chunks (clustered 384-d vectors, see index_benchmark) over ``--days``
days ending today, sealed into blocks of ``--block-days`` with HNSW indexes as the index policy
decides, as a store looks after a few weeks. One document has a version on every day (``--doc-chunks``
chunks each), so its erasure touches every partition. Timed: the erasure's transaction (row deletes in
every partition, term statistics, documents, day records, audit row), the VACUUM of the touched
partitions after it, and, for comparison, what a rebuild of the partitions holding it would cost (the
seal that built the blocks, which rewrote exactly those rows). Checked: the document is gone, every
vector index is still valid, and a search still returns 10 hits.

Usage: ``python -m benchmarks.forget_benchmark [--sizes 10000,100000,1000000] [--days 30] [--block-days 10]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.ops import forget
from pipeline.query import search
from pipeline.records import ModelInfo
from pipeline.storage import catalog, connections, days, erasure, model_registry, retention
from pipeline.storage.layout import LayoutSettings
from tests.support.vectors import clustered, synthetic_day

DATABASE = "docvec_bench_forget"
MODEL = ModelInfo(name="synthetic-clustered", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")
ERASED = "doc-0.md"


def build_store(conn, size: int, day_count: int, block_days: int, doc_chunks: int, policy: IndexSettings) -> float:
    """Load ``size`` chunks over the days, seal and index them; returns the seconds sealing took."""
    model_id = model_registry.register(conn, MODEL).id
    today = dt.date.today()
    per_day = max(doc_chunks, size // day_count)
    documents = max(1, per_day // doc_chunks)  # chunk i belongs to doc-(i % documents).md
    the_days = [today - dt.timedelta(days=day_count - 1 - n) for n in range(day_count)]
    for n, day in enumerate(the_days):
        days.replace_day(conn, synthetic_day(day, clustered(per_day, seed=n), MODEL.name, MODEL.revision,
                                             documents=documents, doc_prefix="doc"), model_id)
    started = time.perf_counter()
    sealing.seal_days(conn, today, retention.oldest_kept_day(today, day_count + 1), LayoutSettings(block_days=block_days),
                      policy)
    seal_seconds = time.perf_counter() - started
    for part in catalog.partitions(conn):
        if not catalog.existing_vector_index(conn, part.table):
            builds.maintain_partition(conn, part.table, policy)
    conn.execute("VACUUM ANALYZE chunks")
    return seal_seconds


def measure(size: int, args: argparse.Namespace, policy: IndexSettings) -> None:
    settings = scratch_settings(DATABASE, MODEL.dim)
    try:
        with connections.connect(settings) as conn:
            seal_seconds = build_store(conn, size, args.days, args.block_days, args.doc_chunks, policy)
            stored = catalog.partitions(conn)
            rows = sum(p.rows for p in stored)
            started = time.perf_counter()
            report = forget.forget(conn, [ERASED], vacuum=False)  # VACUUM, run after it, is timed apart
            erase_seconds = time.perf_counter() - started
            started = time.perf_counter()
            erasure.vacuum(conn, report.removed.days)
            vacuum_seconds = time.perf_counter() - started
            left = conn.execute("SELECT count(*) FROM chunks WHERE doc_id = %s", (ERASED,)).fetchone()[0]
            invalid = [h.index for h in catalog.vector_index_health(conn) if not h.valid]
            model_id = model_registry.lookup(conn, MODEL.name, MODEL.revision).id
            hits = search.search_vector(conn, clustered(1, seed=99_999)[0], model_id, k=10)
            indexed = sum(1 for p in stored if catalog.existing_vector_index(conn, p.table))
            print(f"  {rows:>10,} chunks  {len(stored):>3} partitions ({indexed} indexed)  erased "
                  f"{report.removed.chunks:,} chunks on {len(report.removed.days)} days: erase {erase_seconds:.3f} s, "
                  f"vacuum {vacuum_seconds:.3f} s; rebuild of the blocks {seal_seconds:.1f} s", flush=True)
            if left or invalid or len(hits) != 10:
                raise SystemExit(f"forget_benchmark: after the erasure {left} chunks are left, invalid indexes "
                                 f"{invalid}, {len(hits)} hits")
            print(f"  rebuild / erase at {rows:,} chunks: {seal_seconds / max(erase_seconds, 1e-6):.1f}x", flush=True)
    finally:
        drop_scratch(DATABASE)


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="store sizes in chunks, comma-separated")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--block-days", type=int, default=LayoutSettings.block_days)
    parser.add_argument("--doc-chunks", type=int, default=4, help="chunks of each document per day")
    parser.add_argument("--exact-max-rows", type=int, default=IndexSettings.exact_max_rows)
    args = smoke.parse_args(parser, {"sizes": "600,1200", "days": 6, "block_days": 2, "exact_max_rows": 40})
    policy = IndexSettings(exact_max_rows=args.exact_max_rows)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.days} days sealed in blocks of "
          f"{args.block_days}, HNSW above {policy.exact_max_rows:,} rows; one document with {args.doc_chunks} "
          "chunks on every day is erased", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        measure(size, args, policy)


if __name__ == "__main__":
    main()
