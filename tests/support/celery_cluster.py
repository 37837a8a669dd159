"""A real Celery cluster on the loopback interface for tests/test_celery.py and benchmarks/celery_benchmark.py:
a Redis server (Debian's redis-server, append-only file on, so a restart keeps the queues) and
``dagster-celery`` worker processes, each in a session of its own so that it can be killed whole."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.network import free_port

REDIS_HINT = "install it with `apt-get install redis-server` (scripts/test.sh does this as root)"
CELERY_RUN_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "celery" / "run_config.yaml"
# Dagster's console log line for a step event, as a worker prints it:
# "... - <run id> - <pid> - <step> - STEP_SUCCESS - ..."
STEP_EVENT = re.compile(r" - (?P<run>[0-9a-f]{8}-[0-9a-f-]{27}) - (?:\d+ - )?(?P<step>\w+) - "
                        r"(?P<event>STEP_START|STEP_SUCCESS)\b")


def redis_binary() -> str | None:
    return shutil.which("redis-server") or next((p for p in ("/usr/bin/redis-server",) if Path(p).exists()), None)


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {seconds:.0f} s")


class RedisServer:
    """redis-server on 127.0.0.1 with its data in ``folder``; ``restart`` keeps the port and the data."""

    def __init__(self, folder: Path) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError(f"redis-server is not installed: {REDIS_HINT}")
        self.binary, self.folder, self.port = binary, folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self.answers, 30, f"redis-server did not answer on port {self.port}")
        return self

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.exceptions.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(timeout=30)
        self.process = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


def run_config(broker: str, folder: Path, visibility_timeout: int | None = None) -> Path:
    """deploy/celery/run_config.yaml as shipped, pointed at ``broker`` (database 0 for the queues, 1 for
    results); a test may shorten the visibility timeout after which a lost worker's step is redelivered."""
    config = yaml.safe_load(CELERY_RUN_CONFIG.read_text())
    execution = config["execution"]["config"]
    execution["broker"], execution["backend"] = f"{broker}/0", f"{broker}/1"
    if visibility_timeout is not None:
        execution["config_source"]["broker_transport_options"]["visibility_timeout"] = visibility_timeout
    path = folder / "celery_run_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    queues: Sequence[str] = field(default_factory=tuple)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def steps(self, event: str = "STEP_SUCCESS") -> set[tuple[str, str]]:
        """(run id, step key) of every step this worker started or finished, from its log."""
        return {(m["run"], m["step"]) for m in STEP_EVENT.finditer(self.output()) if m["event"] == event}

    def kill(self) -> None:
        """SIGKILL to the worker's whole session (the CLI, Celery's main process, its pool process): a
        machine lost, not a clean shutdown."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(name: str, config: Path, env: Mapping[str, str], folder: Path,
                 queues: Sequence[str] = (), ready_seconds: float = 120) -> Worker:
    """``dagster-celery worker start`` with one pool process (a step is long and holds a model: one at a
    time per worker), returning once Celery says it is ready."""
    log = folder / f"worker-{name}.log"
    command = [str(Path(sys.executable).with_name("dagster-celery")), "worker", "start", "-A", "dagster_celery.app",
               "-y", str(config), "-n", name, "-l", "INFO"]
    for queue in queues:
        command += ["-q", queue]
    command += ["--", "--concurrency=1", f"--logfile={log}"]
    process = subprocess.Popen(command, cwd=folder, env=dict(env), stdout=subprocess.DEVNULL,
                               stderr=(folder / f"worker-{name}.err").open("ab"), start_new_session=True)
    worker = Worker(name, process, log, tuple(queues))
    try:
        _wait(lambda: " ready." in worker.output() or process.poll() is not None, ready_seconds,
              f"Celery worker {name} was not ready")
    except TimeoutError:
        worker.kill()
        raise
    if process.poll() is not None:
        raise RuntimeError(f"Celery worker {name} exited: {(folder / f'worker-{name}.err').read_text()[-2000:]}")
    return worker


def materialize(env: Mapping[str, str], cwd: Path, config: Path, location: str = "deploy.celery.definitions",
                partition_range: str | None = None, partition: str | None = None) -> subprocess.Popen[str]:
    """An ingest run of the day range (or one day) as a user launches it, with the Celery run config:
    the run's process is the executor, its steps go to the workers."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    target = ["--partition-range", partition_range] if partition_range else ["--partition", str(partition)]
    return subprocess.Popen([dagster, "asset", "materialize", "-m", location, "--select", "group:ingest", *target,
                             "-c", str(config)], cwd=cwd, env=dict(env), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
