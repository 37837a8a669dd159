"""Running Dagster's own commands on docvec's instance, and waiting on the runs they queue (part of
the CLI face, which may use Dagster)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment
from pipeline.settings import Settings

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
CODE_LOCATION = "pipeline.definitions"
# The partitioned job of the ingest group (schedules/ingest.py), named here so that the CLI does not
# import Dagster's definitions to start.
INGEST_JOB = "ingest_daily"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
DAEMON_FRESH_SECONDS = 60
# Run config for CLI materializations: Dagster's console logger prints every event at DEBUG (~80 lines
# for the demo); at INFO a person sees each step's own progress lines and any warnings.
CONSOLE_AT_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def environment(settings: Settings) -> dict[str, str]:
    """This process's environment with docvec's instance in it. DAGSTER_HOME is exported, not left to
    .env: `dg` reads the instance's telemetry opt-out (dagster.yaml) before it loads .env."""
    return {**os.environ, **dagster_environment(settings)}


def executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def launch_ingest(settings: Settings, first: dt.date, last: dt.date, config: Mapping[str, Any]) -> int:
    """Materialize the ingest job over the days ``first``..``last`` as one run in the foreground (the
    assets' single-run backfill policy: the model loads once), as the README's `dg launch` does; its
    exit code. A job, not the asset selection ``group:ingest``: Dagster 1.13 parses that selection with
    a beta parameter and warns on every call."""
    return run(["launch", "-m", CODE_LOCATION, "--job", INGEST_JOB, "--partition-range", f"{first}...{last}",
                "--config-json", json.dumps({**CONSOLE_AT_INFO, **config})], settings, program="dg").returncode


def run(args: Sequence[str], settings: Settings, *, program: str = "dagster",
        capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a Dagster command (``dagster`` or ``dg``) on docvec's instance. The environment is passed
    explicitly and the working directory is the data dir, so no .env from elsewhere can point it at
    another instance."""
    command = [executable(program), *args]
    print("$ " + " ".join(command), flush=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, cwd=settings.home, env=environment(settings), text=True,
                            capture_output=capture, check=False)
    if capture:
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
    return result


def replace_process(args: Sequence[str], settings: Settings) -> NoReturn:
    """Become a Dagster command (``exec``): a service manager's SIGTERM then reaches Dagster itself, which
    stops its webserver, daemon and code servers, instead of a parent that dies and leaves them running.

    Dagster maps SIGTERM to whatever SIGINT does. A process started in the background by a
    non-interactive shell, or by a supervisor that ignores SIGINT, inherits SIGINT ignored (SIG_IGN is
    kept across exec), and Dagster then ignores SIGTERM too; so both go back to their defaults first."""
    command = [executable("dagster"), *args]
    print("$ " + " ".join(command), flush=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chdir(settings.home)
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_DFL)
    os.execvpe(command[0], command, environment(settings))


def _daemon_running(instance: Any) -> bool:
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
                for run_ in runs:
                    if run_.status.value in TERMINAL and run_.run_id not in reported:
                        reported.add(run_.run_id)
                        print(f"  {run_.tags.get('dagster/partition', '?')}: {run_.status.value} (run {run_.run_id})",
                              flush=True)
                if len(runs) >= expected_runs and all(r.status.value in TERMINAL for r in runs):
                    failed = [r for r in runs if r.status.value != "SUCCESS"]
                    print(f"backfill {backfill_id}: {len(runs) - len(failed)} succeeded, {len(failed)} failed")
                    return 1 if failed else 0
                if daemon is not None and daemon.poll() is not None:
                    print(f"the Dagster daemon exited with code {daemon.returncode}", file=sys.stderr)
                    return 1
                if daemon is None and not _daemon_running(instance):
                    # The daemon whose heartbeat was seen has stopped since (a `dagster dev` just closed):
                    # nobody would dequeue the runs.
                    print("the Dagster daemon that was running has stopped: starting one", flush=True)
                    daemon = start_daemon()
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
