"""The partition layout, measured through docvec's own code: one HNSW-indexed partition per day against
days sealed into multi-day blocks (pipeline/layout.py), on the same rows, side by side in one run.

For each layout: docvec's vector search (served-model filter and latest-version anti join included),
p50/p99 latency and recall@10 against an exact scan of the same query, and the index work it took.
Then the daily upkeep of the sealed layout: a new day arrives, the oldest day leaves the window —
what sealing (the growing block is rebuilt with one more day) and retention (the block straddling the
window's edge is rebuilt without its expired day) cost, against dropping a day partition.

Last, every row rebuilt into one partition with one HNSW index (the same build parameters), in a copy of
the store: the single-index baseline the sealed layout is held against, measured alone and then side by
side with the sealed layout, query by query (the ``side by side`` lines: the ratio they give does not
depend on the machine's pace between two phases of the run). Each layout's search is measured at every
``--ef-search`` (the per-partition candidate list): more partitions each return their own k nearest, so
the sealed layout may reach the single index's recall at a lower ef_search, and the comparison that
matters is latency at equal recall. The ``side by side`` comparisons: docvec's defaults (the walked
ef_search against the one the indexes record); equal recall (the sealed layout at the lowest ef_search
whose recall reaches the single index's at the recorded one); and each layout at the fastest ef_search of
its sweep whose recall@10 reaches 0.95, or which layout never reaches it.

Last, parallel partition scans: the sealed layout's partitions in two spans of days searched on two
connections at once, against one statement over all of them, with each span's time alone and at once
(``parallel_partition_scans``).

Data: clustered 384-d vectors (see index_benchmark), ``--rows`` over ``--days`` days ending today.

``--window-block``: every sealed day of the window in one block (``LayoutSettings.window_block``), so the
sealed layout is that block and today's partition; its daily seal is one build over the whole window, and
leaves out the day that fell out of it (day folders), so retention has no block to trim.

Usage: ``python -m benchmarks.layout_benchmark [--rows 300000] [--days 30] [--block-days 10] [--queries 100]
[--exact-max-rows 20000] [--ef-search 16 24 32 48 64] [--seal-after-days 2] [--window-block]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks import smoke
from benchmarks.server import benchmark_main, copy_scratch, drop_scratch, existing_scratch, scratch_settings
from pipeline.indexing import builds, sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.query import search
from pipeline.records import ModelInfo
from pipeline.storage import catalog, connections, days, model_registry, partitions, retention
from pipeline.storage.layout import LayoutSettings
from tests.support.vectors import clustered, synthetic_day

DATABASE = "docvec_bench_layout"
SINGLE = "docvec_bench_layout_one_index"  # the same rows, rebuilt into one partition
PASSES = 3  # side by side: every query this many times on each layout
RECALL_FLOOR = 0.95  # issue #31's floor for the sealed layout: each layout also compared at its fastest ef above it
MODEL = ModelInfo(name="synthetic-clustered", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")


def load_day(conn, model_id: int, day: dt.date, rows: int, seed: int) -> None:
    days.replace_day(conn, synthetic_day(day, clustered(rows, seed=seed), MODEL.name, MODEL.revision,
                                          documents=max(1, rows // 4), doc_prefix=f"d{seed}"), model_id)


def index_days(conn, days: list[dt.date], policy: IndexSettings) -> float:
    started = time.perf_counter()
    for day in days:
        held_by = catalog.partition_for(conn, day)
        if held_by is not None and held_by.first == day:
            builds.maintain_partition(conn, held_by.table, policy)
    return time.perf_counter() - started


Measured = tuple[float, float, float]  # p50 ms, p99 ms, recall@10


def exact_answers(conn, model_id: int, queries: np.ndarray, k: int = 10,
                  since: dt.date | None = None) -> list[set[str]]:
    """Each query's true ``k`` nearest from ``since`` on (the same search with index scans turned off)."""
    exact = []
    for query in queries:
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")
            exact.append({h.chunk_id for h in search.search_vector(conn, query, model_id, k=k, since=since)})
    return exact


def measure(conn, model_id: int, queries: np.ndarray, ef_search: int | None = None,
            exact: list[set[str]] | None = None, k: int = 10, since: dt.date | None = None) -> Measured:
    """p50 and p99 ms of docvec's vector search (at ``ef_search``; None: docvec's default, the walked
    ef_search), and its recall@k against the exact answer. The exact answers come first: interleaved,
    each full scan would evict the indexes from shared_buffers and time the reload instead of the search."""
    exact = exact if exact is not None else exact_answers(conn, model_id, queries, k, since)
    for query in queries:  # one untimed pass: a serving index lives in memory
        search.search_vector(conn, query, model_id, k=k, ef_search=ef_search, since=since)
    latencies, recalls = [], []
    for query, expected in zip(queries, exact, strict=True):
        started = time.perf_counter()
        hits = search.search_vector(conn, query, model_id, k=k, ef_search=ef_search, since=since)
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len(expected & {h.chunk_id for h in hits}) / max(1, len(expected)))
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), float(np.mean(recalls))


def sweep(conn, model_id: int, queries: np.ndarray, label: str, ef_values: list[int],
          exact: list[set[str]] | None = None) -> dict[int, Measured]:
    """``measure`` at each ef_search, a line each (``exact``: the answers, when already taken)."""
    exact = exact if exact is not None else exact_answers(conn, model_id, queries)
    found = {}
    for ef in ef_values:
        found[ef] = p50, p99, recall = measure(conn, model_id, queries, ef, exact)
        print(f"  {label:<12} ef_search {ef:>4}   p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  recall@10 {recall:.3f}", flush=True)
    return found


def walked_scopes(conn, model_id: int, queries: np.ndarray, recorded: int, today: dt.date) -> None:
    """docvec's walked ef_search against the recorded one, where the days searched lie in fewer
    partitions (a ``since``), and for hybrid's pool of 50 nearest: a line each, recall against exact."""
    parts = catalog.partitions(conn)
    scopes = [(None, 10), (None, 50), (today - dt.timedelta(days=2), 10)]
    newest_block = next((p for p in reversed(parts) if p.is_block), None)
    if newest_block is not None:
        scopes.append((newest_block.first, 10))
    for since, k in scopes:
        walk = search.vector_walk(conn, since=since)
        exact = exact_answers(conn, model_id, queries, k, since)
        scope = f"since {since}" if since else "all days"
        for label, ef in (("walked", walk.ann.ef_search), ("recorded", recorded)):
            p50, p99, recall = measure(conn, model_id, queries, ef, exact, k, since)
            print(f"  {scope:<17} {walk.hnsw_indexes} HNSW  k={k:<3} {label:<8} ef_search {ef:>3}   p50 {p50:7.2f} ms  "
                  f"p99 {p99:7.2f} ms  recall@{k} {recall:.3f}", flush=True)


def side_by_side(sealed, single, model_id: int, queries: np.ndarray, ef_search: tuple[int, int], label: str) -> None:
    """Both layouts, query by query (``PASSES`` times each, which goes first alternating): p50 and p99
    of each at its ``ef_search`` (sealed, single), their ratio, and the median of the per-query ratios.
    Each query meets both layouts in the same second, so the machine's pace changes both alike."""
    timings: dict[str, list[float]] = {"sealed": [], "single": []}
    runs = [("sealed", sealed, ef_search[0]), ("single", single, ef_search[1])]
    for n in range(PASSES):
        for i, query in enumerate(queries):
            for name, conn, ef in runs if (n + i) % 2 == 0 else runs[::-1]:
                started = time.perf_counter()
                search.search_vector(conn, query, model_id, k=10, ef_search=ef)
                timings[name].append((time.perf_counter() - started) * 1000)
    sealed_ms, single_ms = (np.array(timings[name]) for name in ("sealed", "single"))
    sealed_p50, single_p50 = float(np.percentile(sealed_ms, 50)), float(np.percentile(single_ms, 50))
    print(f"side by side, {label}: sealed at ef_search {ef_search[0]} p50 {sealed_p50:.2f} ms "
          f"p99 {np.percentile(sealed_ms, 99):.2f} ms; one index at {ef_search[1]} p50 {single_p50:.2f} "
          f"ms p99 {np.percentile(single_ms, 99):.2f} ms; p50 {sealed_p50 / single_p50:.2f}x, "
          f"per query (median) {np.median(sealed_ms / single_ms):.2f}x ({PASSES} passes of {len(queries)} queries)",
          flush=True)


def halves(conn) -> tuple[tuple[dt.date | None, dt.date], tuple[dt.date, dt.date | None]]:
    """The partitions cut into two spans of days whose HNSW walks cost about alike (a walk's cost grows
    about as the square root of its rows: ~1.3 ms at 330k rows, ~0.45 ms at 33k here)."""
    parts = catalog.partitions(conn)
    costs = [float(np.sqrt(max(p.rows, 1))) for p in parts]
    cut = min(range(1, len(parts)), key=lambda n: max(sum(costs[:n]), sum(costs[n:])))
    return (None, parts[cut].first - dt.timedelta(days=1)), (parts[cut].first, None)


def parallel_partition_scans(conn, second, model_id: int, queries: np.ndarray, ef_search: int) -> None:
    """Issue #31's "parallel partition scans": the sealed layout's partitions in two spans of days
    (``halves``), each searched on its own connection at once and the two nearest lists merged, against
    one statement over all of them (both at ``ef_search``), query by query. Then why: each span alone,
    and at once beside the other span or beside itself (the same pages)."""
    first, last = halves(conn)

    def span(on, days: tuple[dt.date | None, dt.date | None], query: np.ndarray) -> tuple[float, list]:
        started = time.perf_counter()
        hits = search.search_vector(on, query, model_id, k=10, ef_search=ef_search, since=days[0], until=days[1])
        return (time.perf_counter() - started) * 1000, hits

    timings: dict[str, list[float]] = {}
    same = 0
    with ThreadPoolExecutor(max_workers=1) as other:
        for _ in range(PASSES):
            for query in queries:
                one_ms, one_hits = span(conn, (None, None), query)
                started = time.perf_counter()
                elsewhere = other.submit(span, second, last, query)
                first_ms, first_hits = span(conn, first, query)
                last_ms, last_hits = elsewhere.result()
                spread_ms = (time.perf_counter() - started) * 1000
                merged = sorted([*first_hits, *last_hits], key=lambda h: -(h.similarity or 0.0))[:10]
                same += [h.chunk_id for h in merged] == [h.chunk_id for h in one_hits]
                beside_self = other.submit(span, second, last, query)
                self_ms, _ = span(conn, last, query)
                beside_self.result()
                for name, ms in (("one statement", one_ms), ("two spans at once", spread_ms),
                                 ("older span alone", span(conn, first, query)[0]),
                                 ("newer span alone", span(conn, last, query)[0]),
                                 ("older span beside newer", first_ms), ("newer span beside older", last_ms),
                                 ("newer span beside itself", self_ms)):
                    timings.setdefault(name, []).append(ms)
    p50 = {name: float(np.percentile(ms, 50)) for name, ms in timings.items()}
    print(f"parallel partition scans at ef_search {ef_search}: days up to {first[1]} | from {last[0]} on two "
          f"connections at once p50 {p50['two spans at once']:.2f} ms against one statement "
          f"{p50['one statement']:.2f} ms ({p50['two spans at once'] / p50['one statement']:.2f}x); hits identical "
          f"for {same} of {PASSES * len(queries)} searches", flush=True)
    print("  why, p50 ms: " + "; ".join(f"{name} {p50[name]:.2f}" for name in timings if name not in
                                        ("one statement", "two spans at once")), flush=True)


def fastest_above(swept: dict[int, Measured], floor: float) -> int | None:
    """The ef_search of the sweep whose p50 is lowest among those whose recall@10 reaches ``floor``."""
    reaching = [ef for ef, (_, _, recall) in swept.items() if recall >= floor]
    return min(reaching, key=lambda ef: swept[ef][0]) if reaching else None


def one_index(conn) -> tuple[str, float]:
    """Every partition rebuilt into one, with the HNSW index the sealed blocks have (build and search
    parameters), given the memory to build it in memory as the policy would for a smaller table."""
    parts = catalog.partitions(conn)
    spec = next(spec for part in parts if (spec := catalog.index_spec_of(conn, part.table)) is not None)
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '4GB'")
    table = partitions.rebuild(conn, parts, parts[0].first, parts[-1].last, partitions.same_index(spec))
    conn.execute("RESET maintenance_work_mem")
    return str(table), time.perf_counter() - started


def describe(conn) -> str:
    parts = catalog.partitions(conn)
    indexed = sum(1 for p in parts if catalog.existing_vector_index(conn, p.table))
    return f"{len(parts)} partitions ({indexed} indexed, {sum(p.is_block for p in parts)} blocks)"


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--block-days", type=int, default=LayoutSettings.block_days)
    parser.add_argument("--seal-after-days", type=int, default=LayoutSettings.seal_after_days,
                        help="days a day stays open for late files before it is sealed (fewer: fewer partitions)")
    parser.add_argument("--window-block", action="store_true",
                        help="seal every sealed day of the window into one block (two graphs: the block and today)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--exact-max-rows", type=int, default=IndexSettings.exact_max_rows,
                        help="the index policy's threshold: partitions up to this many rows are scanned exactly")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 24, 32, 48],
                        help="per-partition HNSW candidate lists to measure the sealed layout and the one index at "
                             "(besides the one the indexes record)")
    args = smoke.parse_args(parser, {"rows": 800, "days": 8, "block_days": 2, "queries": 5, "exact_max_rows": 40,
                                     "ef_search": [16]})
    policy = IndexSettings(exact_max_rows=args.exact_max_rows)
    per_day = args.rows // args.days
    today = dt.date.today()
    days = [today - dt.timedelta(days=args.days - 1 - n) for n in range(args.days)]
    sealed_layout = LayoutSettings(block_days=args.block_days, seal_after_days=args.seal_after_days,
                                   window_block=args.window_block)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.rows:,} rows = {args.days} days x {per_day:,}, "
          f"clustered 384-d; {args.queries} queries, k=10, docvec search_vector (HNSW at the ef_search its "
          "indexes record unless swept); policy: "
          f"HNSW above {policy.exact_max_rows:,} rows; sealed: "
          + ("one block for the window" if args.window_block else f"blocks of {args.block_days} days")
          + f", seal after {sealed_layout.seal_after_days}")
    settings = scratch_settings(DATABASE, MODEL.dim)
    queries = clustered(args.queries, seed=10_000)
    try:
        with connections.connect(settings) as conn:
            model_id = model_registry.register(conn, MODEL).id
            started = time.perf_counter()
            for n, day in enumerate(days):
                load_day(conn, model_id, day, per_day, seed=n)
            load_seconds = time.perf_counter() - started
            build_seconds = index_days(conn, days, policy)
            conn.execute("VACUUM ANALYZE chunks")
            p50, p99, recall = measure(conn, model_id, queries)
            print(f"per-day   {describe(conn):<40} index builds {build_seconds:7.1f} s   "
                  f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  recall@10 {recall:.3f}   (loads {load_seconds:.0f} s)", flush=True)

            started = time.perf_counter()
            oldest = retention.oldest_kept_day(today, args.days)
            sealing.seal_days(conn, today, oldest, sealed_layout, policy, leave_out_expired=args.window_block)
            seal_seconds = time.perf_counter() - started
            conn.execute("VACUUM ANALYZE chunks")
            p50, p99, recall = measure(conn, model_id, queries)
            print(f"sealed    {describe(conn):<40} sealing      {seal_seconds:7.1f} s   "
                  f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  recall@10 {recall:.3f}", flush=True)

            # The next day: a new day is loaded and indexed, yesterday's day seals, the oldest expires.
            tomorrow = today + dt.timedelta(days=1)
            started = time.perf_counter()
            load_day(conn, model_id, tomorrow, per_day, seed=args.days)
            index_days(conn, [tomorrow], policy)
            load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            sealed = sealing.seal_days(conn, tomorrow, oldest + dt.timedelta(days=1), sealed_layout, policy,
                                       leave_out_expired=args.window_block)
            seal_seconds = time.perf_counter() - started
            started = time.perf_counter()
            result = retention.apply_retention(conn, tomorrow, args.days)
            retention_seconds = time.perf_counter() - started
            grown = ", ".join(f"{o.partition} ({o.rows:,} rows)" for o in sealed) or "nothing"
            trimmed = ", ".join(f"{p.table} -> {p.kept_as or 'dropped'}" for p in result.dropped) or "nothing"
            print(f"next day  load + index {load_seconds:.1f} s; sealing {seal_seconds:.1f} s ({grown}); "
                  f"retention {retention_seconds:.1f} s ({trimmed})")
            conn.execute("VACUUM ANALYZE chunks")
            exact = exact_answers(conn, model_id, queries)  # the same rows for the line below and the sweep
            p50, p99, recall = measure(conn, model_id, queries, exact=exact)
            print(f"after     {describe(conn):<40} {'':21}   p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  recall@10 {recall:.3f}")
            recorded = catalog.search_settings(conn).ef_search  # what the indexes record, for one index
            walk = search.vector_walk(conn)  # what docvec searches every day with
            print(f"  docvec's default over {walk.hnsw_indexes} HNSW indexes: ef_search {walk.ann.ef_search} "
                  f"(walked_ef_search of the recorded {recorded})")
            ef_values = sorted({*args.ef_search, recorded, walk.ann.ef_search})
            sealed_sweep = sweep(conn, model_id, queries, "sealed", ef_values, exact)
            walked_scopes(conn, model_id, queries, recorded, tomorrow)

        # The single index is built in a copy of the store, so both layouts stay searchable and are measured
        # side by side, query by query: measured one after the other, the ratio moved ±20% between runs.
        copy_scratch(DATABASE, SINGLE)
        single_settings = existing_scratch(SINGLE)
        assert single_settings is not None
        with connections.connect(single_settings) as single, connections.connect(settings) as conn:
            table, build_seconds = one_index(single)
            single.execute("VACUUM ANALYZE chunks")
            print(f"one index {describe(single):<40} rebuild      {build_seconds:7.1f} s   ({table})", flush=True)
            single_sweep = sweep(single, model_id, queries, "one index", ef_values, exact)
            single_at = single_sweep[recorded]
            matching = [ef for ef in ef_values if sealed_sweep[ef][2] >= single_at[2]] or [max(ef_values)]
            ef = matching[0]
            print(f"sealed at ef_search {ef} (recall@10 {sealed_sweep[ef][2]:.3f}) / one index at ef_search "
                  f"{recorded} (recall@10 {single_at[2]:.3f}): p50 {sealed_sweep[ef][0] / single_at[0]:.2f}x, "
                  f"p99 {sealed_sweep[ef][1] / single_at[1]:.2f}x; both at ef_search {recorded}: p50 "
                  f"{sealed_sweep[recorded][0] / single_at[0]:.2f}x")
            default = sealed_sweep[walk.ann.ef_search]
            print(f"docvec's defaults: sealed at the walked ef_search {walk.ann.ef_search} (recall@10 {default[2]:.3f}) / "
                  f"one index at {recorded} (recall@10 {single_at[2]:.3f}): p50 {default[0] / single_at[0]:.2f}x, "
                  f"p99 {default[1] / single_at[1]:.2f}x")
            comparisons = [((walk.ann.ef_search, recorded), "docvec's defaults"), ((ef, recorded), "equal recall")]
            sealed_floor, single_floor = fastest_above(sealed_sweep, RECALL_FLOOR), fastest_above(single_sweep, RECALL_FLOOR)
            if sealed_floor is not None and single_floor is not None:
                comparisons.append(((sealed_floor, single_floor),
                                    f"each at its fastest ef_search with recall@10 >= {RECALL_FLOOR}"))
            else:
                short = [name for name, found in (("sealed", sealed_floor), ("one index", single_floor)) if found is None]
                print(f"recall@10 >= {RECALL_FLOOR}: not reached in the sweep by {' and '.join(short)}")
            for efs, label in comparisons:
                side_by_side(conn, single, model_id, queries, efs, label)
            with connections.connect(settings) as second:
                parallel_partition_scans(conn, second, model_id, queries, walk.ann.ef_search)
    finally:
        drop_scratch(SINGLE)
        drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
