"""Waiting on Dagster runs from the command line (part of the CLI face, which may use Dagster)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
DAEMON_FRESH_SECONDS = 60


def _daemon_running(instance) -> bool:  # type: ignore[no-untyped-def]
    heartbeats = instance.get_daemon_heartbeats()
    now = time.time()
    return any(now - beat.timestamp < DAEMON_FRESH_SECONDS for beat in heartbeats.values())


def wait_for_backfill(backfill_id: str, expected_runs: int, environment: Mapping[str, str],
                      start_daemon: Callable[[], subprocess.Popen[bytes]], timeout: float,
                      poll_seconds: float = 2.0) -> int:
    """Wait until the backfill's runs all end; print each run's outcome; 0 only if all succeeded."""
    os.environ.update(environment)  # the instance's storage URL lives in these variables
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.get() as instance:
        daemon = None if _daemon_running(instance) else start_daemon()
        print(f"waiting for {expected_runs} runs of backfill {backfill_id} "
              f"({'started a Dagster daemon' if daemon else 'a Dagster daemon is already running'})", flush=True)
        deadline = time.monotonic() + timeout
        reported: set[str] = set()
        try:
            while True:
                runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
                for run in runs:
                    if run.status.value in TERMINAL and run.run_id not in reported:
                        reported.add(run.run_id)
                        print(f"  {run.tags.get('dagster/partition', '?')}: {run.status.value} (run {run.run_id})",
                              flush=True)
                if len(runs) >= expected_runs and all(run.status.value in TERMINAL for run in runs):
                    failed = [run for run in runs if run.status.value != "SUCCESS"]
                    print(f"backfill {backfill_id}: {len(runs) - len(failed)} succeeded, {len(failed)} failed")
                    return 1 if failed else 0
                if daemon is not None and daemon.poll() is not None:
                    print(f"the Dagster daemon exited with code {daemon.returncode}", file=sys.stderr)
                    return 1
                if time.monotonic() > deadline:
                    print(f"backfill {backfill_id} still running after {timeout:.0f} s; its runs go on in Dagster",
                          file=sys.stderr)
                    return 1
                time.sleep(poll_seconds)
        finally:
            if daemon is not None:
                daemon.terminate()
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
