"""A first run and an unchanged rerun of the ingest DAG on a real corpus, as a user runs them: each a
`dg launch --partition-range` process (the README's command) on a Postgres-backed Dagster instance,
timed the way the web UI shows a run (its RUN_START to RUN_SUCCESS), and as the whole command's wall time;
then a re-landed rerun: every file copied again with the same bytes (new inode and times, as `cp -r`,
`aws s3 sync` or rsync without -a leave them), recognised by the hash of its bytes without parsing.

Corpus: the first ``--pages`` content pages of the Python 3.11 documentation (Debian's python3.11-doc,
HTML), spread over ``--days`` day folders ending today.

Usage: ``python -m benchmarks.rerun_benchmark [--pages 120] [--days 3]``; it works in a scratch
database (``docvec_bench_rerun``) and a temporary home.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance

from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline.cli import dagster_runs
from pipeline.cli.envfile import dagster_environment
from pipeline.settings import Settings
from tests.support.corpora import python_doc_pages, write_days

DATABASE = "docvec_bench_rerun"


def materialize(settings: Settings, home: Path, first: dt.date, last: dt.date) -> tuple[float, float, dict[str, str]]:
    """(run seconds as the UI shows them, the command's wall seconds, the run's step metadata summary)."""
    env = {**os.environ, **dagster_environment(settings), "DOCVEC_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run([dagster_runs.executable("dg"), "launch", "-m", dagster_runs.CODE_LOCATION,
                           "--job", dagster_runs.INGEST_JOB, "--partition-range", f"{first}...{last}"],
                          cwd=home, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the materialization failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    saved = dict(os.environ)
    os.environ.update(dagster_environment(settings))  # DagsterInstance.get() finds the instance through them
    try:
        with DagsterInstance.get() as instance:
            [run] = instance.get_runs(limit=1)
            stats = instance.get_run_stats(run.run_id)
            meta, embeddings, read = (_metadata(instance, name)
                                      for name in ("vector_store", "chunk_embeddings", "raw_documents"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    summary = {"chunks": str(meta["chunks"].value), "days_unchanged": str(meta["days_unchanged"].value),
               "embedded": str(embeddings["embedded"].value), "device": str(embeddings["device"].value),
               "parsed": str(read["files_parsed"].value)}
    return float(stats.end_time - stats.start_time), wall, summary


def reland(landing: Path) -> None:
    """Every file of the landing written again with the same bytes: to a hidden name, renamed over it."""
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        copy = path.with_name(f".{path.name}.relanded")
        copy.write_bytes(path.read_bytes())
        os.replace(copy, path)


def _metadata(instance: DagsterInstance, asset: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        raise SystemExit(f"the run recorded no materialization of {asset}")
    return dict(event.asset_materialization.metadata)


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--days", type=int, default=3)
    args = smoke.parse_args(parser, {"pages": 2, "days": 2})
    settings = scratch_settings(DATABASE)
    pages = python_doc_pages(args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        dates = write_days(pages, home / "landing", args.days, dt.date.today())
        rows = [(label, *materialize(settings, home, dates[0], dates[-1])) for label in ("first run", "unchanged rerun")]
        reland(home / "landing")
        rows.append(("re-landed rerun", *materialize(settings, home, dates[0], dates[-1])))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; corpus: {len(pages)} pages of the Python 3.11 "
          f"documentation (HTML) over {args.days} days")
    print(f"  {'run':<18} {'run (UI)':>9} {'command':>9}  chunks  embedded  parsed  days unchanged  model device")
    for label, run_seconds, wall, summary in rows:
        print(f"  {label:<18} {run_seconds:>8.2f}s {wall:>8.2f}s  {summary['chunks']:>6}  {summary['embedded']:>8}  "
              f"{summary['parsed']:>6}  {summary['days_unchanged']:>6} of {args.days}  {summary['device']}")
    (_, first_run, first_wall, _), *reruns = rows
    for label, rerun, rerun_wall, _ in reruns:
        print(f"  {label}: {first_run / rerun:.1f}x shorter as the UI shows runs (target >= 50x); "
              f"whole command {first_wall / rerun_wall:.1f}x (process start and code loading included)")
    drop_scratch(DATABASE)


if __name__ == "__main__":
    main()
