"""``docvec serve`` as a real server process for tests: started on a free loopback port with its output
in a log file, waited for until ``/healthz`` answers, stopped with SIGTERM (killed if it hangs)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.network import free_port
from tests.support.processes import stop, wait_until_answering


def _health(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@contextmanager
def serve_process(args: Sequence[str], env: Mapping[str, str], log_dir: Path, *,
                  ready: Sequence[int] = (200,)) -> Iterator[tuple[str, Path]]:
    """``docvec serve --port PORT *args`` with ``env``: yields its base URL and log file once
    ``/healthz`` answers with a status in ``ready`` (AssertionError with the log if it never does)."""
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--port", str(port), *args],
                                   env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(lambda: _health(base) in ready, process, "docvec serve", log_path)
            yield base, log_path
        finally:
            stop(process)
