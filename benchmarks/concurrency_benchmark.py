"""Search latency while the store changes: idle, during a day load (staging COPY + swap), during a
CONCURRENTLY HNSW build, and during retention dropping a day; side by side in one run.

A search thread queries without pause (k=10, the real `search_vector` SQL, its own connection) and
files every latency under the phase it started in. Synthetic clustered vectors (see index_benchmark).

Usage: ``python -m benchmarks.concurrency_benchmark [--rows-per-day 30000] [--days 4] [--load-rows 100000]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.indexing import builds
from pipeline.indexing.policy import IndexSettings
from pipeline.query import search
from pipeline.records import ModelInfo
from pipeline.storage import connections, days, layout, model_registry, retention
from tests.support.vectors import clustered, synthetic_day

DATABASE = "docvec_bench_concurrency"
MODEL = ModelInfo(name="synthetic-clustered", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")
TODAY = dt.date(2026, 6, 30)


class Searcher(threading.Thread):
    def __init__(self, settings, model_id: int, queries: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.settings, self.model_id, self.queries = settings, model_id, queries
        self.phase = "setup"
        self.samples: dict[str, list[float]] = {}
        self.errors: dict[str, list[str]] = {}
        self.short: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with connections.connect(self.settings, for_search=True) as conn:
            i = 0
            while not self.stop.is_set():
                phase, query = self.phase, self.queries[i % len(self.queries)]
                started = time.perf_counter()
                try:
                    hits = search.search_vector(conn, query, self.model_id, k=10)
                    self.samples.setdefault(phase, []).append((time.perf_counter() - started) * 1000)
                    if len(hits) < 10:
                        self.short[phase] = self.short.get(phase, 0) + 1
                except Exception as exc:  # noqa: BLE001 - counted and shown: the point is that there are none
                    self.errors.setdefault(phase, []).append(f"{type(exc).__name__}: {exc}")
                i += 1


@dataclass
class PhaseResult:
    name: str
    seconds: float
    latencies_ms: list[float]
    errors: list[str]
    short_results: int


def search_during(settings, model_id: int, queries: np.ndarray,
                  phases: list[tuple[str, Callable[[], object]]]) -> list[PhaseResult]:
    """Run each phase's work in turn while a search thread queries without pause."""
    searcher = Searcher(settings, model_id, queries)
    searcher.start()
    timings = []
    for name, work in phases:
        searcher.phase = name
        started = time.perf_counter()
        work()
        timings.append((name, time.perf_counter() - started))
    searcher.stop.set()
    searcher.join(timeout=30)
    return [PhaseResult(name, seconds, searcher.samples.get(name, []), searcher.errors.get(name, []),
                        searcher.short.get(name, 0)) for name, seconds in timings]


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-per-day", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--load-rows", type=int, default=100_000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = smoke.parse_args(parser, {"rows_per_day": 1_200, "days": 2, "load_rows": 400, "idle_seconds": 0.2})

    settings = scratch_settings(DATABASE, MODEL.dim)
    history = [TODAY - dt.timedelta(days=back) for back in range(args.days, 0, -1)]
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, MODEL).id
        for n, day in enumerate(history):  # setup, not measured: indexed days like a live store
            days.replace_day(conn, synthetic_day(day, clustered(args.rows_per_day, seed=n), MODEL.name, MODEL.revision,
                                                  doc_prefix=f"day{n}"), model_id)
            if day != history[-1]:
                builds.maintain_partition(conn, layout.partition_name(day), IndexSettings(exact_max_rows=1_000))

    new_day = synthetic_day(TODAY, clustered(args.load_rows, seed=42), MODEL.name, MODEL.revision, doc_prefix="new")
    with connections.connect(settings) as conn:
        results = search_during(settings, model_id, clustered(500, seed=99), [
            ("idle", lambda: time.sleep(args.idle_seconds)),
            (f"loading a {args.load_rows:,}-row day", lambda: days.replace_day(conn, new_day, model_id)),
            (f"HNSW build, {args.rows_per_day:,}-row day (CONCURRENTLY)",
             lambda: builds.maintain_partition(conn, layout.partition_name(history[-1]),
                                               IndexSettings(exact_max_rows=1_000))),
            ("retention dropping the oldest day", lambda: retention.apply_retention(conn, TODAY, window_days=args.days)),
            ("idle again", lambda: time.sleep(args.idle_seconds)),
        ])

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.days} days x {args.rows_per_day:,} rows "
          f"(all but the last HNSW-indexed), 384-d clustered vectors; search k=10 in a loop on its own connection")
    print(f"{'phase':<44} {'seconds':>8} {'queries':>8} {'errors':>7} {'<k rows':>8} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        lat = np.array(r.latencies_ms)
        stats = (np.percentile(lat, 50), np.percentile(lat, 99), lat.max()) if lat.size else (float("nan"),) * 3
        print(f"{r.name:<44} {r.seconds:>8.2f} {lat.size:>8} {len(r.errors):>7} {r.short_results:>8} "
              f"{stats[0]:>8.1f} {stats[1]:>8.1f} {stats[2]:>8.1f}")
        if r.errors:
            print(f"  first error: {r.errors[0]}")
    drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
