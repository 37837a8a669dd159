"""Latency of each search mode (vector, text, hybrid) over day-partitioned synthetic chunks, at several
sizes, side by side in one run with the text mode docvec had before BM25 (``ts_rank_cd`` over a stored
``tsvector`` column with its GIN index, all words first and then any word: migrations 0005-0007).

The store is laid out as docvec lays it out: each day loaded by its day swap, indexed by the policy
(HNSW above 5,000 rows), then days older than two sealed into 10-day blocks with their own HNSW index;
queried through docvec's own search functions, latest-version filter included. The old text mode runs
its own SQL over the same rows, with the generated column added to ``chunks`` as migration 0005 did.

Synthetic data: clustered 384-d vectors (see index_benchmark) and text drawn from a 5,000-word Zipf
vocabulary, ~60 words a chunk, with one identifier (``ERR-nnnnnnn``) in one chunk out of five. Queries: 3
vocabulary words of rank 100-5,000 (content words; the 100 commonest play the stopwords), plus an
identifier in half of them. The text and vectors are unrelated, so this measures speed, not quality
(quality: benchmarks/retrieval_benchmark.py). The chunks are recorded under the bundled model's name, so
``benchmarks/serve_benchmark.py`` can serve the same databases (``--reuse`` keeps them).

Usage: ``python -m benchmarks.hybrid_benchmark [--sizes 100000 1000000] [--days 10 30] [--queries 100] [--reuse]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from typing import Any

import numpy as np
import psycopg

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, existing_scratch, scratch_settings
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.ingest.embedding import DEFAULT_MODEL, model_identity
from pipeline.query import search
from pipeline.query.request import SearchRequest
from pipeline.query.search_model import NamedModel
from pipeline.query.service import SearchService
from pipeline.records import DayEmbeddings, ModelInfo
from pipeline.settings import Settings
from pipeline.storage import connections, days, layout, model_registry
from tests.support.vectors import clustered, synthetic_day

DATABASE = "docvec_bench_hybrid"
FIRST_DAY = dt.date(2026, 1, 1)
OLD_TEXT = "text, ts_rank_cd (before)"


def bundled_model() -> ModelInfo:
    """The bundled model's identity (its vectors here are synthetic: only their shape matters)."""
    name, revision = model_identity()
    return ModelInfo(name=name, revision=revision, dim=384, max_seq_length=256, normalized=True, device="cpu")


def vocabulary(size: int = 5_000) -> list[str]:
    rng = np.random.default_rng(3)
    letters = np.array(list("abcdefghiklmnoprstuvw"))
    return ["".join(rng.choice(letters, size=rng.integers(4, 10))) for _ in range(size)]


def texts(n: int, seed: int, words: list[str]) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    picks = rng.choice(len(words), size=(n, 60), p=weights)
    out = []
    for i, row in enumerate(picks):
        sentence = " ".join(words[j] for j in row)
        out.append(f"{sentence} ERR-{seed * 1_000_000 + i:07d}." if i % 5 == 0 else sentence + ".")
    return out


def store_day(day: dt.date, n: int, per_day: int, words: list[str]) -> DayEmbeddings:
    """Day ``n`` of this benchmark's synthetic store, stored on ``day``: its chunks, vectors and BM25 entries."""
    model = bundled_model()
    return synthetic_day(day, clustered(per_day, seed=n), model.name, model.revision,
                         texts=texts(per_day, n, words), documents=per_day // 4, doc_prefix=f"d{n}")


def load(settings: Settings, rows: int, day_count: int, words: list[str]) -> None:
    per_day = rows // day_count
    policy = IndexSettings()
    last = FIRST_DAY + dt.timedelta(days=day_count - 1)
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, bundled_model()).id
        for n in range(day_count):
            day = FIRST_DAY + dt.timedelta(days=n)
            days.replace_day(conn, store_day(day, n, per_day, words), model_id)
            builds.maintain_partition(conn, layout.partition_name(day), policy)
        sealing.seal_days(conn, last, FIRST_DAY, layout.LayoutSettings(), policy)
        # The text column docvec had before BM25 (migration 0005), for the side-by-side text mode.
        conn.execute("ALTER TABLE chunks ADD COLUMN text_search tsvector "
                     "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED")
        conn.execute("CREATE INDEX chunks_text_search_idx ON chunks USING gin (text_search)")
        conn.execute("VACUUM ANALYZE chunks")


def reusable(name: str, rows: int, day_count: int) -> Settings | None:
    """Settings for an already loaded benchmark database of ``rows`` chunks over ``day_count`` days (as
    ``load`` stores them: a whole number per day), if there is one."""
    settings = existing_scratch(name)
    if settings is None:
        return None
    with connections.connect(settings) as conn:
        loaded = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    return settings if loaded == rows // day_count * day_count else None


def old_text_search(conn: psycopg.Connection[Any], query: str, model_id: int, k: int = 10) -> list[Any]:
    """docvec's text mode before BM25, as it was: every word first, then any word when too few."""
    rows: list[Any] = []
    for tsquery in ("plainto_tsquery('english', %(q)s)",
                    "replace(plainto_tsquery('english', %(q)s)::text, ' & ', ' | ')::tsquery"):
        found = conn.execute(
            f"""SELECT c.chunk_id, ts_rank_cd(c.text_search, q.query) AS score
                FROM chunks c, (SELECT {tsquery} AS query) q
                WHERE c.text_search @@ q.query AND c.model_id = %(m)s AND NOT EXISTS
                      (SELECT 1 FROM documents d WHERE d.doc_id = c.doc_id AND d.ingest_date > c.ingest_date)
                ORDER BY score DESC, c.chunk_id LIMIT %(k)s""", {"q": query, "m": model_id, "k": k}).fetchall()
        rows += [r for r in found if r not in rows][:k - len(rows)]
        if len(rows) >= k:
            break
    return rows


def phrases(queries: int, words: list[str], day_count: int) -> list[str]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(queries):
        terms = [words[j] for j in rng.integers(100, 5_000, size=3)]  # content words, not the commonest
        if i % 2:
            terms.append(f"ERR-{int(rng.integers(0, day_count)) * 1_000_000 + int(rng.integers(0, 1_000)) * 5:07d}")
        out.append(" ".join(terms))
    return out


def measure(settings: Settings, model_id: int, queries: int, words: list[str],
            day_count: int) -> dict[str, list[float]]:
    vectors = clustered(queries, seed=99)
    timings: dict[str, list[float]] = {mode: [] for mode in (*search.MODES, OLD_TEXT)}
    with connections.connect(settings, for_search=True) as conn:
        service = SearchService.over(conn, NamedModel(DEFAULT_MODEL))  # the synthetic vectors' registered identity
        for vector, phrase in zip(vectors, phrases(queries, words, day_count), strict=True):
            for mode in timings:
                started = time.perf_counter()
                if mode == OLD_TEXT:
                    old_text_search(conn, phrase, model_id)
                else:
                    service.search(SearchRequest(query=phrase, k=10, mode=mode), vector=vector)
                timings[mode].append((time.perf_counter() - started) * 1000)
    return timings


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--days", type=int, nargs="+", default=[10])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database between runs and reuse it")
    args = smoke.parse_args(parser, {"sizes": [400], "days": [2], "queries": 5})
    if len(args.days) != len(args.sizes):
        parser.error("give one --days value per --sizes value")
    words = vocabulary()
    lines = []
    for rows, day_count in zip(args.sizes, args.days, strict=True):
        name = f"{DATABASE}_{rows}"
        settings = reusable(name, rows, day_count) if args.reuse else None
        reused = settings is not None
        started = time.perf_counter()
        if settings is None:
            settings = scratch_settings(name, 384)
            load(settings, rows, day_count, words)
        with connections.connect(settings) as conn:
            model_id = model_registry.register(conn, bundled_model()).id
            partitions = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'chunks'::regclass").fetchone()[0]
        load_seconds = time.perf_counter() - started
        timings = measure(settings, model_id, args.queries, words, day_count)
        p50 = {mode: float(np.percentile(np.array(values[1:]), 50)) for mode, values in timings.items()}
        for mode, values in timings.items():
            lat = np.array(values[1:])  # the first query warms the caches
            lines.append(f"{rows:>10,} {day_count:>5} {partitions:>5} {mode:<26} {np.percentile(lat, 50):>8.1f} "
                         f"{np.percentile(lat, 99):>8.1f} {lat.mean():>8.1f}   "
                         + ("(loaded earlier)" if reused else f"(load + index + seal {load_seconds:.0f} s)"))
        lines.append(f"{'':>10} BM25 text p50 / ts_rank_cd text p50 = {p50['text'] / p50[OLD_TEXT]:.2f}")
        if not args.reuse:
            drop_scratch(name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; days sealed into 10-day blocks after 2 days, "
          f"HNSW above 5,000 rows; {args.queries} queries, k=10, hybrid = vector + BM25 top-50 fused by document")
    print(f"{'rows':>10} {'days':>5} {'parts':>5} {'mode':<26} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
