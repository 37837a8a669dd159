"""`docvec dev` under a service manager: started with SIGINT ignored (as a supervisor, or a
non-interactive shell's background job, starts it), stopped with SIGTERM, it must take Dagster's
webserver, daemon and code servers down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli.envfile import PROJECT_ROOT
from tests.support.browser import serves
from tests.support.databases import fresh_database
from tests.support.network import free_port


def _session_alive(session: int) -> list[str]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    alive.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue
    return alive


@pytest.mark.slow
def test_sigterm_stops_docvec_dev_and_everything_it_started(migrated, embedder) -> None:
    # A database of its own for docvec and Dagster: the daemon's heartbeats must not make other tests'
    # backfills believe a daemon is running.
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_dev_command")
    env_file = PROJECT_ROOT / ".env"
    kept = env_file.read_text() if env_file.exists() else None  # `docvec up` rewrites it: restored below
    port = free_port()
    env = {**os.environ, "DOCVEC_HOME": str(migrated.home), "DATABASE_URL": isolated.database_url or "",
           "DAGSTER_DATABASE_URL": isolated.database_url or ""}
    # `trap "" INT` then exec: the command starts with SIGINT ignored, as under many supervisors.
    command = f'trap "" INT; exec "{sys.executable}" -m pipeline.cli dev --port {port}'
    process = subprocess.Popen(["sh", "-c", command], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not serves(port, 180):
            pytest.fail("docvec dev did not serve the web UI within 180 s")
        assert len(_session_alive(process.pid)) >= 3, "dagster dev runs a webserver, a daemon and a code server"

        process.send_signal(signal.SIGTERM)  # what systemd, supervisord or Kubernetes send first
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _session_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _session_alive(process.pid) == [], "a child of docvec dev outlived its SIGTERM"
    finally:
        if process.poll() is None or _session_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        if kept is None:
            env_file.unlink(missing_ok=True)
        else:
            env_file.write_text(kept)
