"""Server processes that tests start (``docvec serve``, ``docvec mcp --http``, a Pushgateway): waiting
until one answers, and stopping it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_until_answering(answers: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path,
                         seconds: float = 120) -> None:
    """Return once ``answers()`` is true (an OSError counts as not yet); AssertionError with the process's
    log when it exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if answers():
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start: {log.read_text()}")
        time.sleep(0.3)


def stop(process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """SIGTERM, as a service manager stops a server; killed if it has not exited after ``seconds``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
