"""Latency of each search mode (vector, text, hybrid) over day-partitioned synthetic chunks, at several
sizes, side by side in one run. Indexes follow docvec's policy (days over 20k rows get HNSW; every day
has its GIN index on the generated tsvector column), queried through docvec's own search functions.

Synthetic data: clustered 384-d vectors (see index_benchmark) and text drawn from a 5,000-word Zipf
vocabulary, ~60 words a chunk, with one identifier (``ERR-nnnnn``) in one chunk out of five. Queries: 3
vocabulary words of rank 100-5,000 (content words; the 100 commonest play the stopwords), plus an identifier
in half of them. The text and vectors are unrelated, so this
measures speed, not quality (quality: `docvec eval`).

Usage: ``python -m benchmarks.hybrid_benchmark [--sizes 100000 1000000] [--days 10 30] [--queries 100]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np

from benchmarks.index_benchmark import clustered
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.errors import DocvecError
from pipeline.indexing import builds
from pipeline.indexing.policy import IndexSettings
from pipeline.query import fusion, search
from pipeline.records import ModelInfo, synthetic_day
from pipeline.settings import load_settings
from pipeline.storage import db, layout, model_registry

DATABASE = "docvec_bench_hybrid"
MODEL = ModelInfo(name="synthetic-clustered", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")
FIRST_DAY = dt.date(2026, 1, 1)


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


def load(settings, rows: int, days: int, words: list[str]) -> int:
    per_day = rows // days
    policy = IndexSettings()
    with db.connect(settings) as conn:
        model_id = model_registry.register(conn, MODEL).id
        for n in range(days):
            day = FIRST_DAY + dt.timedelta(days=n)
            batch = synthetic_day(day, clustered(per_day, seed=n), MODEL.name, MODEL.revision,
                                  texts=texts(per_day, n, words), documents=per_day // 4, doc_prefix=f"d{n}")
            days.replace_day(conn, batch, model_id)
            builds.maintain_partition(conn, layout.partition_name(day), policy)
        conn.execute("VACUUM ANALYZE chunks")
    return model_id


def reusable(name: str, rows: int):
    """Settings for an already loaded benchmark database of ``rows`` chunks, if there is one."""
    from pipeline.settings import Settings

    base = load_settings()
    url = db.with_database(db.server_url(base), name)
    try:
        settings = Settings(home=base.home, database_url=url, dagster_database_url=url, pgbouncer=False)
        with db.connect(settings) as conn:
            loaded = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except DocvecError:  # no such database yet: build it
        return None
    return settings if loaded >= rows - rows % 1000 else None


def measure(settings, model_id: int, queries: int, words: list[str], days: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    vectors = clustered(queries, seed=99)
    phrases = []
    for i in range(queries):
        terms = [words[j] for j in rng.integers(100, 5_000, size=3)]  # content words, not the commonest
        if i % 2:
            terms.append(f"ERR-{int(rng.integers(0, days)) * 1_000_000 + int(rng.integers(0, 1_000)) * 5:07d}")
        phrases.append(" ".join(terms))
    tuning = search.SearchTuning()
    pool = max(10, tuning.candidates)
    timings: dict[str, list[float]] = {mode: [] for mode in search.MODES}
    with db.connect(settings, for_search=True) as conn:
        for vector, phrase in zip(vectors, phrases, strict=True):
            for mode in search.MODES:
                started = time.perf_counter()
                if mode == "vector":
                    search.search_vector(conn, vector, model_id, k=10, tuning=tuning)
                elif mode == "text":
                    search.search_text(conn, phrase, model_id, k=10)
                else:
                    fusion.limit_per_document(fusion.fuse(
                        search.search_vector(conn, vector, model_id, k=pool, tuning=tuning),
                        search.search_text(conn, phrase, model_id, k=pool), tuning.rrf_k), None, 10)
                timings[mode].append((time.perf_counter() - started) * 1000)
    return timings


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--days", type=int, nargs="+", default=[10])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database between runs and reuse it")
    args = parser.parse_args()
    if len(args.days) != len(args.sizes):
        parser.error("give one --days value per --sizes value")
    words = vocabulary()
    lines = []
    for rows, days in zip(args.sizes, args.days, strict=True):
        name = f"{DATABASE}_{rows}"
        settings = reusable(name, rows) if args.reuse else None
        reused = settings is not None
        started = time.perf_counter()
        if settings is None:
            settings = scratch_settings(name, MODEL.dim)
            load(settings, rows, days, words)
        with db.connect(settings) as conn:
            model_id = model_registry.register(conn, MODEL).id
        load_seconds = time.perf_counter() - started
        timings = measure(settings, model_id, args.queries, words, days)
        for mode, values in timings.items():
            lat = np.array(values[1:])  # the first query warms the caches
            lines.append(f"{rows:>10,} {days:>5} {mode:<7} {np.percentile(lat, 50):>8.1f} {np.percentile(lat, 99):>8.1f} "
                         f"{lat.mean():>8.1f}   "
                         + ("(loaded earlier)" if reused else f"(load + index {load_seconds:.0f} s)"))
        if not args.reuse:
            drop_scratch(name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; day partitions, HNSW above 20k rows/day, GIN on "
          f"every day; {args.queries} queries, k=10, hybrid = vector + text top-50 fused (RRF k=60)")
    print(f"{'rows':>10} {'days':>5} {'mode':<7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
