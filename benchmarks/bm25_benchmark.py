"""The text branch at scale: docvec's exact early stop (pipeline/lexical/pruning.py) against the rule it
replaced (candidates: the chunks holding a query term held by at most 5% of the chunks, or the rarest
term's) and against complete scoring (every chunk holding any query term: the exact BM25 top 10 by
definition), side by side on the same store in one run, per class of query; and against itself with
lookups that read every id of each minimal assignment ("all ids", as it was before its conjunctions left
out the posting lists that cost more to read than the candidates they exclude: ``pruning.SCORE_TO_READ``).

The store is the search-modes benchmark's (benchmarks/hybrid_benchmark.py: 1M synthetic chunks over 30
days, ~60 words each from a 5,000-word Zipf vocabulary, an ``ERR-nnnnnnn`` identifier in one chunk in five,
sealed into 10-day blocks); ``--reuse`` keeps it between runs. Query classes, the realistic mix the issue
names: an identifier alone; an identifier with words; plain-word questions (stop words and 3-5 content
words of rank 30-5,000); all-common-word queries (2-4 words of rank 10-100, each held by 6-48% of the
chunks); a single common word (rank 10-200). The paths run in a shuffled order per query, each
through the same SQL statement shape, so caches favour none. "same top 10" compares a path's chunk ids
with complete scoring's, in order; "proven" is the share of searches whose whole top 10 the early stop
proved exact (the others ended on the round budget: hits above the proven score exact, the rest the best of
those scored, pipeline/query/branches.MAX_ROUND_CHUNKS).

As a principal (``--principal-queries`` per class, 0: skip): the early stop as the owner, as a principal
through row-level security with ``docvec_readable_text_matches`` (migration 0017: the GIN index under the
policies), and as the same principal with the policies alone (the text statement before 0017: its GIN
conditions could not run below the policies). The store's documents are readable by everyone (``*``), the
policies' worst case for the statement before: every chunk passes them; "same top 10" compares with the
owner's.

Usage: ``python -m benchmarks.bm25_benchmark [--rows 1000000] [--days 30] [--queries 40] [--reuse]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import psycopg

from benchmarks import smoke
from benchmarks.hybrid_benchmark import DATABASE, bundled_model, load, reusable, vocabulary
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.lexical import pruning
from pipeline.query import branches
from pipeline.storage import access, chunk_search, connections, model_registry
from pipeline.storage.chunk_search import LexicalTerms, MatchedChunk, Scope

BEFORE_SHARE = 0.05  # the rule before the early stop: a term held by more of the chunks selected no candidates
BEFORE_FLOOR = 200
PATHS = ("before: selective terms", "complete scoring", "early stop (docvec)", "early stop, all ids")


def queries(classes: int, words: list[str], day_count: int, seed: int = 11) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)

    def identifier() -> str:  # one the store holds (hybrid_benchmark.texts: every fifth chunk of a day)
        return f"ERR-{int(rng.integers(0, day_count)) * 1_000_000 + int(rng.integers(0, 1_000)) * 5:07d}"

    def content(low: int, high: int, n: int) -> list[str]:
        return [words[int(j)] for j in rng.integers(low, high, size=n)]

    return {
        "identifier": [identifier() for _ in range(classes)],
        "identifier + words": [" ".join([*content(100, 5_000, 2), identifier()]) for _ in range(classes)],
        "plain-word question": [f"how do the {' '.join(content(30, 5_000, int(rng.integers(3, 6))))} work"
                                for _ in range(classes)],
        "all common words": [" ".join(content(10, 100, int(rng.integers(2, 5)))) for _ in range(classes)],
        "one common word": [" ".join(content(10, 200, 1)) for _ in range(classes)],
    }


def before(conn: psycopg.Connection[Any], lexical: branches.LexicalQuery, scope: Scope, k: int) -> list[MatchedChunk]:
    frequencies = {s.term: s.df for s in lexical.plan.terms}
    most = max(BEFORE_SHARE * lexical.plan.chunks, BEFORE_FLOOR)
    selective = [t for t, df in frequencies.items() if df <= most] or [min(frequencies, key=frequencies.__getitem__)]
    return chunk_search.lexical_matches(conn, LexicalTerms(any_of=selective, weights=lexical.weights), scope, k)


def complete(conn: psycopg.Connection[Any], lexical: branches.LexicalQuery, scope: Scope, k: int) -> list[MatchedChunk]:
    return chunk_search.lexical_matches(conn, LexicalTerms(any_of=lexical.term_ids, weights=lexical.weights), scope, k)


def early_stop(conn: psycopg.Connection[Any], lexical: branches.LexicalQuery, scope: Scope, k: int) -> list[MatchedChunk]:
    return branches.text_rounds(conn, lexical, scope, k).matches


@contextmanager
def every_id() -> Iterator[None]:
    """The early stop as it was before its lookups left out the longest posting lists: each lookup holds
    every id of its minimal assignment."""
    lean = pruning.SCORE_TO_READ
    pruning.SCORE_TO_READ = math.inf
    try:
        yield
    finally:
        pruning.SCORE_TO_READ = lean


def early_stop_all_ids(conn: psycopg.Connection[Any], lexical: branches.LexicalQuery, scope: Scope,
                       k: int) -> list[MatchedChunk]:
    with every_id():
        return early_stop(conn, lexical, scope, k)


def measure(settings: Any, model_id: int, by_class: dict[str, list[str]], k: int) -> list[str]:
    runs: dict[str, Callable[..., list[MatchedChunk]]] = dict(
        zip(PATHS, (before, complete, early_stop, early_stop_all_ids), strict=True))
    lines = []
    everything: dict[str, list[float]] = {path: [] for path in PATHS}
    agree_all: dict[str, list[bool]] = {path: [] for path in PATHS}
    order = np.random.default_rng(5)
    with connections.connect(settings, for_search=True) as conn:
        scope = Scope(model_id=model_id)
        for label, phrases in by_class.items():
            timings: dict[str, list[float]] = {path: [] for path in PATHS}
            same: dict[str, list[bool]] = {path: [] for path in PATHS}
            rounds, proven = [], []
            for phrase in phrases:
                results = {}
                # A fresh order per query: a path run right after the same query's search finds its pages warm.
                for path in (PATHS[i] for i in order.permutation(len(PATHS))):
                    started = time.perf_counter()
                    lexical = branches.lexical_query(conn, phrase, model_id)  # term statistics: every path reads them
                    results[path] = [m.chunk_id for m in runs[path](conn, lexical, scope, k)]
                    timings[path].append((time.perf_counter() - started) * 1000)
                found = branches.text_rounds(conn, lexical, scope, k)
                rounds.append(len(found.rounds))
                proven.append(found.exact_down_to == 0.0)
                for path in PATHS:
                    same[path].append(results[path] == results["complete scoring"])
            for path in PATHS:
                lat = np.array(timings[path])
                everything[path] += timings[path]
                agree_all[path] += same[path]
                lines.append(f"{label:<20} {path:<24} {np.percentile(lat, 50):>8.1f} {np.percentile(lat, 99):>8.1f} "
                             f"{lat.mean():>8.1f} {100 * np.mean(same[path]):>9.1f}%"
                             + (f"   rounds: mean {np.mean(rounds):.2f}, max {max(rounds)}; "
                                f"proven {100 * np.mean(proven):.0f}%" if path == PATHS[2] else ""))
    for path in PATHS:
        lat = np.array(everything[path])
        lines.append(f"{'all classes':<20} {path:<24} {np.percentile(lat, 50):>8.1f} {np.percentile(lat, 99):>8.1f} "
                     f"{lat.mean():>8.1f} {100 * np.mean(agree_all[path]):>9.1f}%")
    p50 = {path: float(np.percentile(np.array(everything[path]), 50)) for path in PATHS}
    p99 = {path: float(np.percentile(np.array(everything[path]), 99)) for path in PATHS}
    lines.append(f"early stop / before: p50 {p50[PATHS[2]] / p50[PATHS[0]]:.2f}, p99 {p99[PATHS[2]] / p99[PATHS[0]]:.2f}; "
                 f"early stop / complete: p50 {p50[PATHS[2]] / p50[PATHS[1]]:.2f}, p99 {p99[PATHS[2]] / p99[PATHS[1]]:.2f}; "
                 f"early stop / all ids: p50 {p50[PATHS[2]] / p50[PATHS[3]]:.2f}, p99 {p99[PATHS[2]] / p99[PATHS[3]]:.2f}")
    return lines


PRINCIPAL_PATHS = ("owner (no policies)", "principal: function (0017)", "principal: policies alone")


@contextmanager
def policies_alone() -> Iterator[None]:
    """The text statement a session bound by the policies ran before migration 0017: the owner's."""
    detect = chunk_search._text_session

    def owner_statement(conn: psycopg.Connection[Any]) -> bool:
        detect(conn)  # its session settings still apply
        return False

    chunk_search._text_session = owner_statement  # type: ignore[assignment]
    try:
        yield
    finally:
        chunk_search._text_session = detect  # type: ignore[assignment]


def as_principal(settings: Any, model_id: int, by_class: dict[str, list[str]], k: int, per_class: int) -> list[str]:
    """The early stop as the owner and as a principal, each way (``PRINCIPAL_PATHS``), per class."""
    lines = []
    everything: dict[str, list[float]] = {path: [] for path in PRINCIPAL_PATHS}
    with connections.connect(settings, for_search=True) as conn:
        scope = Scope(model_id=model_id)

        def run(path: str, phrase: str) -> list[str]:
            with ExitStack() as way:
                if path != PRINCIPAL_PATHS[0]:
                    way.enter_context(access.acting_as(conn, ["group:benchmark"]))
                if path == PRINCIPAL_PATHS[2]:
                    way.enter_context(policies_alone())
                return [m.chunk_id for m in early_stop(conn, branches.lexical_query(conn, phrase, model_id), scope, k)]

        for label, phrases in by_class.items():
            timings: dict[str, list[float]] = {path: [] for path in PRINCIPAL_PATHS}
            same: dict[str, list[bool]] = {path: [] for path in PRINCIPAL_PATHS}
            for n, phrase in enumerate(phrases[:per_class]):
                results = {}
                for path in PRINCIPAL_PATHS[n % 3:] + PRINCIPAL_PATHS[:n % 3]:
                    started = time.perf_counter()
                    results[path] = run(path, phrase)
                    timings[path].append((time.perf_counter() - started) * 1000)
                for path in PRINCIPAL_PATHS:
                    same[path].append(results[path] == results[PRINCIPAL_PATHS[0]])
            for path in PRINCIPAL_PATHS:
                lat = np.array(timings[path])
                everything[path] += timings[path]
                lines.append(f"{label:<20} {path:<28} {np.percentile(lat, 50):>8.1f} {np.percentile(lat, 99):>8.1f} "
                             f"{lat.mean():>8.1f} {100 * np.mean(same[path]):>9.1f}%")
    p50 = {path: float(np.percentile(np.array(everything[path]), 50)) for path in PRINCIPAL_PATHS}
    for path in PRINCIPAL_PATHS:
        lat = np.array(everything[path])
        lines.append(f"{'all classes':<20} {path:<28} {p50[path]:>8.1f} {np.percentile(lat, 99):>8.1f} "
                     f"{lat.mean():>8.1f}")
    lines.append(f"p50 as a principal / as the owner: function {p50[PRINCIPAL_PATHS[1]] / p50[PRINCIPAL_PATHS[0]]:.2f}, "
                 f"policies alone {p50[PRINCIPAL_PATHS[2]] / p50[PRINCIPAL_PATHS[0]]:.2f}")
    return lines


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--queries", type=int, default=40, help="queries per class")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--principal-queries", type=int, default=10,
                        help="queries per class searched as a principal each way (0: skip)")
    parser.add_argument("--reuse", action="store_true", help="keep the loaded database between runs and reuse it")
    args = smoke.parse_args(parser, {"rows": 600, "days": 2, "queries": 3, "principal_queries": 2})
    words = vocabulary()
    name = f"{DATABASE}_{args.rows}"
    settings = reusable(name, args.rows, args.days) if args.reuse else None
    loaded = settings is not None
    started = time.perf_counter()
    if settings is None:
        settings = scratch_settings(name, 384)
        load(settings, args.rows, args.days, words)
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, bundled_model()).id
    load_note = "loaded earlier" if loaded else f"load + index + seal {time.perf_counter() - started:.0f} s"
    by_class = queries(args.queries, words, args.days)
    lines = measure(settings, model_id, by_class, args.k)
    principal = as_principal(settings, model_id, by_class, args.k, args.principal_queries) if args.principal_queries else []
    if not args.reuse:
        drop_scratch(name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.rows:,} chunks over {args.days} days "
          f"({load_note}); {args.queries} queries per class, k={args.k}; latency includes reading term statistics")
    print(f"{'class':<20} {'path':<24} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'same top ' + str(args.k):>10}")
    print("\n".join(lines))
    if principal:
        print(f"\nas a principal who may read everything, {args.principal_queries} queries per class:")
        print(f"{'class':<20} {'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'same top ' + str(args.k):>10}")
        print("\n".join(principal))


if __name__ == "__main__":
    main()
