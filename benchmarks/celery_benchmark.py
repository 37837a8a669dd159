"""A 7-day backfill on the Celery executor with one worker, then with two, side by side in one run: what
distributing the steps costs and gains on this machine.

Each variant gets a fresh scratch database (so nothing is reused from the other), the same landing
folder (the sample corpus, 7 days), a Redis broker on the loopback interface and ``N`` workers of one
pool process each, started as deploy/celery/run_config.yaml says. The backfill is one run per day,
two runs at a time (the run queue's ``max_concurrent_runs: 2``), each launched with ``dagster asset
materialize`` and the Celery run config: the run processes submit steps, the workers execute them.
Wall time runs from the first launch to the last run's end; chunks/s is the chunks loaded over it.

Usage: ``python -m benchmarks.celery_benchmark [--days 7] [--notes 20] [--workers 1 2]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment
from pipeline.sample_corpus import write_sample_corpus
from pipeline.storage import connections
from tests.support.celery_cluster import RedisServer, materialize, redis_binary, run_config, start_worker

DATABASE = "docvec_bench_celery"
CONCURRENT_RUNS = 2


def backfill(env: dict[str, str], folder: Path, config: Path, days: list[dt.date]) -> float:
    """One run per day, CONCURRENT_RUNS at a time; returns the wall time. Fails on a failed run."""
    started = time.perf_counter()
    pending, running = list(days), []
    while pending or running:
        while pending and len(running) < CONCURRENT_RUNS:
            day = pending.pop(0)
            running.append((day, materialize(env, folder, config, partition=day.isoformat())))
        for day, process in list(running):
            if process.poll() is not None:
                output = process.communicate()[0]
                if process.returncode != 0 or "RUN_SUCCESS" not in output:
                    raise SystemExit(f"the run of {day} failed:\n{output[-3000:]}")
                running.remove((day, process))
        time.sleep(0.2)
    return time.perf_counter() - started


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--notes", type=int, default=20, help="notes per topic per day (sample corpus)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if redis_binary() is None:
        raise SystemExit("celery_benchmark: redis-server is missing: apt-get install redis-server")
    today = dt.date.today()
    days = [today - dt.timedelta(days=back) for back in range(args.days, 0, -1)]
    lines = []
    with tempfile.TemporaryDirectory(prefix="docvec-celery-bench-") as scratch:
        folder = Path(scratch)
        landing = folder / "landing"
        documents = write_sample_corpus(landing, end=days[-1], days=len(days), notes_per_topic_per_day=args.notes)
        redis = RedisServer(folder / "redis").start()
        try:
            for count in args.workers:
                name = f"{DATABASE}_{count}"
                settings = scratch_settings(name)
                env = {**os.environ, **dagster_environment(settings), "DATABASE_URL": settings.database_url or "",
                       "DOCVEC_LANDING_DIR": str(landing), "PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1"}
                config = run_config(redis.url, folder)
                workers = [start_worker(f"bench{count}-{i}", config, env, folder) for i in range(count)]
                try:
                    seconds = backfill(env, folder, config, days)
                finally:
                    for worker in workers:
                        worker.stop()
                with connections.connect(settings) as conn:
                    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
                drop_scratch(name)
                lines.append((count, seconds, chunks))
        finally:
            redis.stop()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(days)}-day backfill of the sample corpus "
          f"({documents['documents']:,} documents), one run per day, {CONCURRENT_RUNS} runs at a time, "
          "Celery executor, Redis broker, workers of one pool process")
    print(f"{'workers':>7} {'wall s':>8} {'chunks':>8} {'chunks/s':>9} {'vs 1 worker':>12}")
    base = lines[0][1]
    for count, seconds, chunks in lines:
        print(f"{count:>7} {seconds:>8.1f} {chunks:>8,} {chunks / seconds:>9.1f} {base / seconds:>11.2f}x")


if __name__ == "__main__":
    main()
