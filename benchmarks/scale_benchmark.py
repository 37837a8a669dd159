"""docvec at several sizes on one node, each measured the same way in one run, so that the growth from
one size to the next is a measured slope: the cold load of ``--days`` days (day swaps with their BM25
statistics, each day's index, the seal into blocks), a day's upkeep (the next day loaded and indexed,
sealed, the oldest day trimmed by retention), disk, memory, and search per mode with its quality.

- **Load.** As hybrid_benchmark lays a store out (its synthetic chunks: clustered 384-d vectors, ~60-word
  texts from a Zipf vocabulary, an identifier in one chunk in five), timed per step: day swaps (making
  the synthetic days is the benchmark's own work, timed apart and left out), the index policy's build
  per day (HNSW above 5,000 rows), sealing days older than two into 10-day blocks.
- **Upkeep.** What the daily schedule does once the window is full: one more day loaded and indexed,
  sealing, retention (``--days`` days kept).
- **Disk.** The database, and within ``chunks`` its heap (TOAST included), its HNSW indexes and its GIN
  index of BM25 terms.
- **Memory.** The machine's memory in use (MemTotal - MemAvailable: server, its page-cache-free private
  and shared memory, and this process), sampled every 0.2 s: the peak of each step above what was in use
  before the size started. The server's shared_buffers count as they fill (a new embedded cluster's: a
  quarter of the machine's memory); what stays in the page cache is left out, so the indexes' sizes are
  the working set.
- **Search.** docvec's defaults through ``SearchService`` (the served model's filter, latest versions,
  the walked ef_search), hybrid_benchmark's queries (3 content words, an identifier in half), one untimed
  pass first: p50/p99 per mode; and text mode on bm25_benchmark's hardest class, 2-4 of the commonest
  words. Vector recall@10 against the exact scan of the same query; the text
  branch's top 10 against complete BM25 scoring (every chunk holding a query term) on the first
  ``--exact-text-queries``.

Usage: ``python -m benchmarks.scale_benchmark [--sizes 1000000 3000000] [--days 30] [--queries 50]
[--exact-text-queries 10] [--keep] [--reuse]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from benchmarks import smoke
from benchmarks.bm25_benchmark import complete
from benchmarks.bm25_benchmark import queries as query_classes
from benchmarks.hybrid_benchmark import bundled_model, phrases, store_day, vocabulary
from benchmarks.layout_benchmark import exact_answers
from benchmarks.server import benchmark_main, drop_scratch, existing_scratch, scratch_settings
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.ingest.embedding import DEFAULT_MODEL
from pipeline.query import branches, search
from pipeline.query.request import SearchRequest
from pipeline.query.search_model import NamedModel
from pipeline.query.service import SearchResult, SearchService
from pipeline.settings import Settings
from pipeline.storage import catalog, connections, days, layout, model_registry, retention
from pipeline.storage.chunk_search import Scope
from pipeline.storage.host import machine_memory
from pipeline.storage.layout import LayoutSettings
from tests.support.vectors import clustered

DATABASE = "docvec_bench_scale"
GiB = 1024**3


def memory_in_use() -> int:
    """MemTotal - MemAvailable, in bytes (0 where /proc/meminfo is not there)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    except OSError:
        return 0
    return (int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])) * 1024


class MemoryPeaks:
    """The peak of ``memory_in_use`` per named step, above the value when the sampler started."""

    def __init__(self, interval: float = 0.2) -> None:
        self.baseline = memory_in_use()
        self.peaks: dict[str, int] = {}
        self._step: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            step = self._step
            if step is not None:
                self.peaks[step] = max(self.peaks.get(step, 0), memory_in_use() - self.baseline)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._step = name
        try:
            yield
        finally:
            self.peaks[name] = max(self.peaks.get(name, 0), memory_in_use() - self.baseline)
            self._step = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class SizeFigures:
    rows: int
    day_count: int
    seconds: dict[str, float] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)  # mode: p50, p99 ms
    vector_recall: float = 0.0
    text_same: float = 0.0
    memory: dict[str, int] = field(default_factory=dict)
    layout: str = ""
    upkeep: str = ""


def load_days(conn: psycopg.Connection[Any], model_id: int, window: list[dt.date], first: int, per_day: int,
              words: list[str]) -> tuple[float, float]:
    """Each day of ``window`` (day ``first`` on) made and then stored by the day swap: the seconds of the
    swaps (docvec's load), and of making the synthetic days (the benchmark's own work, left out of it)."""
    making = loading = 0.0
    for n, day in enumerate(window, start=first):
        started = time.perf_counter()
        batch = store_day(day, n, per_day, words)
        making += time.perf_counter() - started
        started = time.perf_counter()
        days.replace_day(conn, batch, model_id)
        loading += time.perf_counter() - started
    return loading, making


def index_day(conn: psycopg.Connection[Any], day: dt.date, policy: IndexSettings) -> None:
    builds.maintain_partition(conn, layout.partition_name(day), policy)


def footprint(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Bytes of the database, and of ``chunks``' heap, HNSW indexes and GIN (BM25 terms) indexes."""
    database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    heap = conn.execute("SELECT coalesce(sum(pg_table_size(inhrelid)), 0) FROM pg_inherits "
                        "WHERE inhparent = 'chunks'::regclass").fetchone()[0]
    by_method = dict(conn.execute("""
        SELECT am.amname, sum(pg_relation_size(x.indexrelid))
        FROM pg_inherits h JOIN pg_index x ON x.indrelid = h.inhrelid
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
        WHERE h.inhparent = 'chunks'::regclass GROUP BY am.amname""").fetchall())
    return {"database": int(database), "chunks heap": int(heap), "HNSW indexes": int(by_method.get("hnsw", 0)),
            "GIN indexes": int(by_method.get("gin", 0))}


def describe(conn: psycopg.Connection[Any]) -> str:
    parts = catalog.partitions(conn)
    return f"{len(parts)} partitions ({sum(p.is_block for p in parts)} blocks)"


def build(settings: Settings, figures: SizeFigures, memory: MemoryPeaks, words: list[str],
          policy: IndexSettings, sealed: LayoutSettings, today: dt.date) -> None:
    """The cold load, then one day's upkeep, each step timed and its memory sampled."""
    per_day = figures.rows // figures.day_count
    window = [today - dt.timedelta(days=figures.day_count - 1 - n) for n in range(figures.day_count)]
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, bundled_model()).id
        with memory.step("load"):
            figures.seconds["load (day swaps)"], making = load_days(conn, model_id, window, 0, per_day, words)
        print(f"  {figures.rows:,}: load {figures.seconds['load (day swaps)']:.1f} s "
              f"(making the synthetic days, not counted: {making:.1f} s)", flush=True)
        steps = (("index builds", lambda: [index_day(conn, day, policy) for day in window]),
                 ("seal", lambda: sealing.seal_days(conn, today, window[0], sealed, policy)))
        for name, run in steps:
            with memory.step(name):
                started = time.perf_counter()
                run()
                figures.seconds[name] = time.perf_counter() - started
            print(f"  {figures.rows:,}: {name} {figures.seconds[name]:.1f} s", flush=True)
        tomorrow = today + dt.timedelta(days=1)
        with memory.step("upkeep"):
            loading, _ = load_days(conn, model_id, [tomorrow], figures.day_count, per_day, words)
            started = time.perf_counter()
            index_day(conn, tomorrow, policy)
            figures.seconds["upkeep: load + index"] = loading + time.perf_counter() - started
            started = time.perf_counter()
            grown = sealing.seal_days(conn, tomorrow, window[1], sealed, policy)
            figures.seconds["upkeep: seal"] = time.perf_counter() - started
            started = time.perf_counter()
            trimmed = retention.apply_retention(conn, tomorrow, figures.day_count)
            figures.seconds["upkeep: retention"] = time.perf_counter() - started
        figures.upkeep = ("sealed " + (", ".join(f"{o.partition} ({o.rows:,} rows)" for o in grown) or "nothing")
                          + "; retention " + (", ".join(f"{p.table} -> {p.kept_as or 'dropped'}"
                                                        for p in trimmed.dropped) or "nothing"))
        print(f"  {figures.rows:,}: upkeep {figures.upkeep}", flush=True)
        conn.execute("VACUUM ANALYZE chunks")
    describe_store(settings, figures)


def describe_store(settings: Settings, figures: SizeFigures) -> None:
    with connections.connect(settings) as conn:
        figures.bytes = footprint(conn)
        figures.layout = describe(conn)


def measure_search(settings: Settings, figures: SizeFigures, memory: MemoryPeaks, words: list[str],
                   queries: int, exact_text_queries: int) -> None:
    vectors = clustered(queries, seed=99)
    texts_ = phrases(queries, words, figures.day_count)
    with connections.connect(settings, for_search=True) as conn:
        model_id = model_registry.register(conn, bundled_model()).id
        # The exact answers first: each full scan evicts the indexes, and would time their reload instead.
        exact = exact_answers(conn, model_id, vectors)
        scope = Scope(model_id=model_id)
        same = []
        for phrase in texts_[:exact_text_queries]:
            lexical = branches.lexical_query(conn, phrase, model_id)
            early = [m.chunk_id for m in branches.text_rounds(conn, lexical, scope, 10).matches]
            same.append(early == [m.chunk_id for m in complete(conn, lexical, scope, 10)])
        figures.text_same = float(np.mean(same)) if same else float("nan")
        service = SearchService.over(conn, NamedModel(DEFAULT_MODEL))
        with memory.step("search"):
            for mode in search.MODES:
                figures.latency[mode], found = timed(service, [
                    (SearchRequest(query=phrase, k=10, mode=mode), vector)
                    for vector, phrase in zip(vectors, texts_, strict=True)])
                if mode == "vector":
                    figures.vector_recall = float(np.mean([
                        len(expected & {h.chunk_id for h in result.hits}) / max(1, len(expected))
                        for expected, result in zip(exact, found, strict=True)]))
            # The text branch's hardest class (bm25_benchmark): every word common, many chunks tie on a bound.
            common = query_classes(queries, words, figures.day_count)["all common words"]
            figures.latency["text, common words"], _ = timed(
                service, [(SearchRequest(query=phrase, k=10, mode="text"), None) for phrase in common])


def timed(service: SearchService, requests: list[tuple[SearchRequest, np.ndarray | None]],
          ) -> tuple[tuple[float, float], list[SearchResult]]:
    """Each request searched once untimed (a serving index lives in memory), then again timed: the p50 and
    p99 ms of the timed pass, and its results."""
    for wanted, vector in requests:
        service.search(wanted, vector=vector)
    timings, results = [], []
    for wanted, vector in requests:
        started = time.perf_counter()
        results.append(service.search(wanted, vector=vector))
        timings.append((time.perf_counter() - started) * 1000)
    return (float(np.percentile(timings, 50)), float(np.percentile(timings, 99))), results


def size_table(all_figures: list[SizeFigures]) -> list[str]:
    """One line per figure, a column per size, and the ratio of each size to the one before."""
    columns = [f"{f.rows:>14,}" for f in all_figures]
    ratios = [f"{f'x{b.rows / a.rows:.1f} rows':>14}" for a, b in itertools.pairwise(all_figures)]
    lines = [f"{'figure':<34}{''.join(columns)}{''.join(ratios)}"]

    def line(label: str, values: list[float], unit: str, digits: int = 1) -> None:
        cells = "".join(f"{v:>14.{digits}f}" for v in values)
        slopes = "".join(f"{(b / a if a else float('nan')):>13.2f}x" for a, b in itertools.pairwise(values))
        lines.append(f"{label + ' (' + unit + ')':<34}{cells}{slopes}")

    for step in all_figures[0].seconds:
        line(step, [f.seconds.get(step, float("nan")) for f in all_figures], "s")
    for part in all_figures[0].bytes:
        line(part, [f.bytes[part] / GiB for f in all_figures], "GiB", 2)
    for step in all_figures[0].memory:
        line(f"memory peak, {step}", [f.memory[step] / GiB for f in all_figures], "GiB", 2)
    for mode in all_figures[0].latency:
        line(f"{mode} p50", [f.latency[mode][0] for f in all_figures], "ms")
        line(f"{mode} p99", [f.latency[mode][1] for f in all_figures], "ms")
    line("vector recall@10", [f.vector_recall for f in all_figures], "vs exact", 3)
    line("text top 10 = complete BM25", [f.text_same for f in all_figures], "share", 2)
    return lines


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--exact-text-queries", type=int, default=10)
    parser.add_argument("--exact-max-rows", type=int, default=IndexSettings.exact_max_rows,
                        help="the index policy's threshold: partitions up to this many rows are scanned exactly")
    parser.add_argument("--block-days", type=int, default=LayoutSettings.block_days)
    parser.add_argument("--keep", action="store_true", help=f"keep each size's database ({DATABASE}_<rows>)")
    parser.add_argument("--reuse", action="store_true",
                        help="measure search again on the databases a --keep run left (nothing is loaded)")
    args = smoke.parse_args(parser, {"sizes": [300, 900], "days": 6, "queries": 5, "exact_text_queries": 3,
                                     "exact_max_rows": 100, "block_days": 2})
    policy = IndexSettings(exact_max_rows=args.exact_max_rows)
    words = vocabulary()
    today = dt.date.today()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {machine_memory() / GiB:.0f} GiB; {args.days} days per "
          f"size; HNSW above {policy.exact_max_rows:,} rows; days older than two sealed into "
          f"{args.block_days}-day blocks; {args.queries} queries, k=10, docvec's defaults", flush=True)
    all_figures = []
    for rows in args.sizes:
        name = f"{DATABASE}_{rows}"
        figures = SizeFigures(rows=rows, day_count=args.days)
        memory = MemoryPeaks()
        try:
            settings = existing_scratch(name) if args.reuse else None
            if settings is None:
                settings = scratch_settings(name, 384)
                build(settings, figures, memory, words, policy, LayoutSettings(block_days=args.block_days), today)
            else:
                describe_store(settings, figures)
                figures.upkeep = "(loaded earlier: only search, disk and memory measured)"
            measure_search(settings, figures, memory, words, args.queries, args.exact_text_queries)
        finally:
            memory.close()
            if not (args.keep or args.reuse):
                drop_scratch(name)
        figures.memory = memory.peaks
        all_figures.append(figures)
        print(f"  {rows:,}: {figures.layout}; p50 ms " + ", ".join(
            f"{mode} {p50:.1f}" for mode, (p50, _) in figures.latency.items()), flush=True)
    print(f"this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB")
    for figures in all_figures:
        print(f"{figures.rows:,} chunks: {figures.layout}; upkeep: {figures.upkeep}")
    print("\n".join(size_table(all_figures)))


if __name__ == "__main__":
    main()
