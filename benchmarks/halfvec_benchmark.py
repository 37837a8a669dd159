"""halfvec (16-bit floats) against vector (32-bit) storage, side by side in one run.

1. Synthetic: ``--rows`` clustered 384-d vectors (tests/support/vectors.clustered) in one table per type:
   table size, then for each index kind docvec's policy builds (HNSW, IVFFlat, with the policy's build and
   search parameters) build seconds, index size, recall@10 and p50/p99 query latency; truth is the exact
   top 10 of the float32 vectors (numpy), so the halfvec rows pay for their rounding too.
2. A real corpus (``--corpus``, default python-docs): its pages ingested through docvec's stages with the
   real model into a store of ``vector`` columns, MRR@10/hit@1/hit@5 of docvec's vector, text and hybrid
   modes on its labelled questions; then the same store converted to ``halfvec`` by migration 0016 (timed)
   and measured again, with the share of questions whose top-10 vector chunks are identical.

Usage: ``python -m benchmarks.halfvec_benchmark [--rows 200000] [--queries 100] [--corpus python-docs|git-docs|none]``
Works in scratch databases (``docvec_bench_halfvec``, ``docvec_bench_halfvec_corpus``), dropped afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from benchmarks import smoke
from benchmarks.retrieval_benchmark import CORPORA, DAY, docvec_rankers, load_docvec, measure
from benchmarks.server import benchmark_main, drop_scratch
from pipeline.indexing.policy import IndexKind, IndexSettings, IndexState, plan_index
from pipeline.ingest.embedding import load_embedder
from pipeline.query import evaluation, search
from pipeline.settings import Settings, load_settings
from pipeline.storage import connections, migrate
from pipeline.storage.loader import copy_rows
from pipeline.storage.queries import value
from pipeline.storage.vector_indexes import (
    AnnSettings,
    PartitionStats,
    apply_ann_settings,
    build_memory_allowance,
    create_index_sql,
    set_build_resources,
)
from pipeline.storage.vector_storage import VectorColumn, VectorStorage
from tests.support import corpora
from tests.support.vectors import DIM, clustered

DATABASE = "docvec_bench_halfvec"
BEFORE_0016 = "0015_chunk_readers"
MODES = ("vector", "text", "hybrid")


def _load(conn: psycopg.Connection[Any], column: VectorColumn, data: np.ndarray) -> str:
    table = f"bench_{column.storage.value}"
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.execute(sql.SQL("CREATE TABLE {} (id int8, embedding {})").format(sql.Identifier(table),
                                                                          sql.SQL(column.type_name)))
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN").format(sql.Identifier(table)))
    with conn.transaction():
        copy_rows(conn.cursor(), table, ["id", "embedding"], ["int8", column.storage.value],
                  ((i, column.adapt(v)) for i, v in enumerate(data)))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    return table


def _query(conn: psycopg.Connection[Any], table: str, column: VectorColumn, vector: np.ndarray,
           ann: AnnSettings | None) -> tuple[list[int], float]:
    statement = sql.SQL("SELECT id FROM {} ORDER BY embedding <=> {} LIMIT 10").format(
        sql.Identifier(table), column.query())
    with conn.transaction():
        if ann is None:
            conn.execute("SET LOCAL enable_indexscan = off")
        else:
            apply_ann_settings(conn, ann, iterative=False)
        started = time.perf_counter()
        ids = [r[0] for r in conn.execute(statement, {"query": vector})]
    return ids, (time.perf_counter() - started) * 1000


def _measure(conn: psycopg.Connection[Any], tables: dict[VectorStorage, str], queries: np.ndarray,
             truth: list[set[int]], ann: AnnSettings | None) -> dict[VectorStorage, tuple[float, float, float]]:
    """recall@10, p50 and p99 ms per storage, the two tables queried in turns (the order alternating per
    query), so a busy moment on the shared machine falls on both alike."""
    recalls: dict[VectorStorage, list[float]] = {storage: [] for storage in tables}
    latencies: dict[VectorStorage, list[float]] = {storage: [] for storage in tables}
    for n, (query, expected) in enumerate(zip(queries, truth, strict=True)):
        for storage in list(tables)[::1 if n % 2 else -1]:
            ids, ms = _query(conn, tables[storage], VectorColumn(storage, DIM), query, ann)
            recalls[storage].append(len(expected & set(ids)) / 10)
            latencies[storage].append(ms)
    return {storage: (float(np.mean(recalls[storage])), float(np.percentile(latencies[storage], 50)),
                      float(np.percentile(latencies[storage], 99))) for storage in tables}


def synthetic(settings: Settings, rows: int, queries_count: int) -> None:
    data = clustered(rows, seed=rows)
    queries = clustered(queries_count, seed=rows + 1)
    truth = [set(np.argsort(-(data @ q))[:10].tolist()) for q in queries]
    stats = PartitionStats(rows=rows, dim=DIM, model_id=1, maintenance_work_mem_bytes=build_memory_allowance())
    specs = {kind: plan_index(stats, IndexState(), IndexSettings(exact_max_rows=0, preferred=kind)).spec
             for kind in (IndexKind.HNSW, IndexKind.IVFFLAT)}
    described = "; ".join(f"{k.value} {dict(s.params)} searched with {dict(s.search_params)}" for k, s in specs.items())
    print(f"synthetic: {rows:,} clustered {DIM}-d vectors, {queries_count} queries, k=10, truth: exact float32 "
          f"top 10 (numpy); indexes as docvec's policy builds them: {described}; latency: the two tables "
          "queried in turns")
    print(f"{'storage':>8} {'table MB':>9} {'method':<8} {'build s':>8} {'index MB':>9} {'recall@10':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7}")
    storages = (VectorStorage.VECTOR, VectorStorage.HALFVEC)
    figures: dict[tuple[str, str], tuple[float, ...]] = {}
    with connections.connect(settings) as conn:
        tables = {storage: _load(conn, VectorColumn(storage, DIM), data) for storage in storages}
        table_mb = {storage: int(value(conn, "SELECT pg_table_size(%s)", (table,))) / 1e6
                    for storage, table in tables.items()}
        for kind in (IndexKind.NONE, *specs):
            built: dict[VectorStorage, tuple[float, float]] = dict.fromkeys(storages, (0.0, 0.0))
            ann: AnnSettings | None = None
            if kind is not IndexKind.NONE:
                spec = specs[kind]
                tuning = dict(spec.search_params)
                ann = AnnSettings(ef_search=tuning.get("ef_search", 40), probes=tuning.get("probes", 1))
                for storage, table in tables.items():
                    set_build_resources(conn, stats, spec, local=False)
                    started = time.perf_counter()
                    conn.execute(create_index_sql(f"{table}_{kind.value}", table, spec, concurrently=False,
                                                  opclass=VectorColumn(storage, DIM).opclass))
                    seconds = time.perf_counter() - started
                    size = int(value(conn, "SELECT pg_relation_size(%s)", (f"{table}_{kind.value}",)))
                    built[storage] = (seconds, size / 1e6)
            measured = _measure(conn, tables, queries, truth, ann)
            method = "exact" if kind is IndexKind.NONE else kind.value
            for storage in storages:
                (seconds, size_mb), (recall, p50, p99) = built[storage], measured[storage]
                figures[storage.value, method] = (seconds, size_mb, recall, p50)
                print(f"{storage.value:>8} {table_mb[storage]:>9.1f} {method:<8} {seconds:>8.1f} {size_mb:>9.1f} "
                      f"{recall:>9.3f} {p50:>7.2f} {p99:>7.2f}", flush=True)
            for table in tables.values():
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(f"{table}_{kind.value}")))
        for table in tables.values():
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    half, full = figures["halfvec", "hnsw"], figures["vector", "hnsw"]
    ivf_half, ivf_full = figures["halfvec", "ivfflat"], figures["vector", "ivfflat"]
    print(f"halfvec / vector: table {table_mb[VectorStorage.HALFVEC] / table_mb[VectorStorage.VECTOR]:.2f}x, "
          f"hnsw {half[1] / full[1]:.2f}x size, {half[0] / full[0]:.2f}x build, recall@10 {half[2] - full[2]:+.3f}, "
          f"p50 {half[3] / full[3]:.2f}x; ivfflat {ivf_half[1] / ivf_full[1]:.2f}x size, "
          f"{ivf_half[0] / ivf_full[0]:.2f}x build, recall@10 {ivf_half[2] - ivf_full[2]:+.3f}")


def _vector_lists(conn: psycopg.Connection[Any], vectors: np.ndarray, model_id: int) -> list[list[str]]:
    return [[h.chunk_id for h in search.search_vector(conn, v, model_id, k=10)] for v in vectors]


def real_corpus(name: str, limit_pages: int | None, limit_questions: int | None) -> None:
    corpus = CORPORA[name]
    queries = evaluation.load_queries(corpus.queries)[:limit_questions]
    pages = corpus.pages()[:limit_pages]
    embedder = load_embedder()
    database = f"{DATABASE}_corpus"
    base = dataclasses.replace(load_settings(), vector_storage=VectorStorage.VECTOR.value)
    settings = migrate.migrated_scratch_database(base, embedder.info.dim, database)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            landing = Path(tmp) / "landing"
            corpora.write_days(pages, landing, 1, DAY, corpus.root())
            model_id, chunks, seconds = load_docvec(settings, landing, embedder)
        vectors = embedder.encode([q.query for q in queries])
        results: dict[str, dict[str, dict[str, Any]]] = {}
        lists: dict[str, list[list[str]]] = {}
        converted = 0.0
        for storage in (VectorStorage.VECTOR, VectorStorage.HALFVEC):
            if storage is VectorStorage.HALFVEC:
                migrate.downgrade(settings, embedder.info.dim, BEFORE_0016)  # still vector: 0016 converted nothing
                started = time.perf_counter()
                migrate.upgrade(dataclasses.replace(settings, vector_storage=storage.value), embedder.info.dim)
                converted = time.perf_counter() - started
            with connections.connect(settings) as conn:
                stored = value(conn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                     "WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'")
                assert stored.startswith(storage.value), stored
                rankers = {mode: rank for mode, rank in docvec_rankers(conn, vectors, model_id, embedder).items()
                           if mode in MODES}
                results[storage.value] = {row["name"]: row for row in measure(rankers, queries)}
                lists[storage.value] = _vector_lists(conn, vectors, model_id)
        print(f"real corpus {name}: {len(pages)} pages, {chunks:,} chunks ingested in {seconds:.0f} s with "
              f"{embedder.info.name}, {len(queries)} questions; the store converted vector -> halfvec by "
              f"migration 0016 in {converted:.1f} s")
        print(f"{'mode':<8} {'vector MRR@10':>13} {'hit@1':>6} {'hit@5':>6}   {'halfvec MRR@10':>14} {'hit@1':>6} "
              f"{'hit@5':>6}   {'MRR diff':>8}")
        for mode in MODES:
            full, half = results["vector"][mode], results["halfvec"][mode]
            print(f"{mode:<8} {full['mrr']:>13.3f} {full['hit1']:>6.3f} {full['hit5']:>6.3f}   {half['mrr']:>14.3f} "
                  f"{half['hit1']:>6.3f} {half['hit5']:>6.3f}   {half['mrr'] - full['mrr']:>+8.3f}")
        same = sum(a == b for a, b in zip(lists["vector"], lists["halfvec"], strict=True))
        overlap = statistics.fmean(len(set(a) & set(b)) / max(1, len(a))
                                   for a, b in zip(lists["vector"], lists["halfvec"], strict=True))
        print(f"vector mode top-10 chunks: identical lists for {same} of {len(queries)} questions, "
              f"mean overlap {overlap:.3f}")
    finally:
        drop_scratch(database)


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic vectors per table")
    parser.add_argument("--queries", type=int, default=100, help="synthetic queries")
    parser.add_argument("--corpus", choices=[*sorted(CORPORA), "none"], default="python-docs",
                        help="the labelled real corpus measured for MRR (none: skip it)")
    parser.add_argument("--limit-pages", type=int, help="only the corpus's first N pages (default: all)")
    parser.add_argument("--limit-questions", type=int, help="only the first N questions (default: all)")
    args = smoke.parse_args(parser, {"rows": 2_000, "queries": 5, "limit_pages": 2, "limit_questions": 5})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores", flush=True)
    settings = migrate.migrated_scratch_database(load_settings(), DIM, DATABASE)
    try:
        synthetic(settings, args.rows, args.queries)
    finally:
        drop_scratch(DATABASE)
    if args.corpus != "none":
        real_corpus(args.corpus, args.limit_pages, args.limit_questions)


if __name__ == "__main__":
    main()
