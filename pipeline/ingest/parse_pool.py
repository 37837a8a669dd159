"""Parsing files in worker processes, in parallel, each file under a time and a memory limit: a parser
that hangs is killed when its time is up, one that balloons hits its address-space limit, one that
crashes takes only its worker down. Each such file becomes an ``UnreadableDocument`` saying so; every
other file of the day is parsed as usual."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from pipeline.errors import ConfigError, UnreadableDocument
from pipeline.ingest.readers import ocr, parse
from pipeline.ingest.readers.ocr import OcrOptions
from pipeline.ingest.readers.structure import Parsed

# Imported once by the fork server, so each worker starts with the parsers loaded (~0.05 s, not ~1 s).
_PRELOAD = ["pipeline.ingest.readers.pdf", "pipeline.ingest.readers.office", "pipeline.ingest.readers.html",
            "pipeline.ingest.readers.images"]
_COMPLETE_FIX = "check that the file is complete and opens in its own application; split it if it is huge"

Outcome = Parsed | UnreadableDocument


@dataclass(frozen=True)
class ParseLimits:
    seconds: float = 120.0  # per file
    memory_mb: int = 2048  # address space of a worker while it parses one file
    workers: int = 0  # 0: one per CPU core
    ocr: OcrOptions = field(default_factory=OcrOptions)  # pages without text: OCR'd inside the same limits

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.memory_mb < 256 or self.workers < 0:
            raise ConfigError("parse limits: seconds must be > 0, memory_mb >= 256 and workers >= 0 "
                              f"(got {self.seconds}, {self.memory_mb}, {self.workers})")

    def worker_count(self, files: int) -> int:
        return max(1, min(files, self.workers or os.cpu_count() or 1))


def _peak_address_space() -> int:
    """This process's largest address space so far (Linux: VmPeak), in bytes; 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _serve(conn: Connection, memory_bytes: int) -> None:
    """A worker: parse the paths it is sent, one at a time, until it is sent None. Each answer says
    whether the worker should be replaced (it reached its memory limit, so its heap is spent)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    over_limit = UnreadableDocument(f"needed more than the parse memory limit of {memory_bytes // 2**20:,} MiB",
                                    f"raise the source's parse_memory_mb, or {_COMPLETE_FIX}")
    while True:
        job = conn.recv()
        if job is None:
            return
        path, options = job
        outcome: Outcome
        try:
            outcome = parse(Path(path), options)
        except UnreadableDocument as exc:
            outcome = exc
        except MemoryError:
            outcome = over_limit
        except Exception as exc:  # noqa: BLE001 - a parser's own failure on this file, whatever it is
            # Native parsers (lxml, PDFium) report a failed allocation as their own error.
            outcome = over_limit if _peak_address_space() >= 0.9 * memory_bytes else UnreadableDocument(
                f"could not be parsed ({type(exc).__name__}: {exc})", _COMPLETE_FIX)
        conn.send((outcome, outcome is over_limit))


class _Subprocess:
    """A parse worker started as a plain ``python -m pipeline.ingest.parse_pool`` child, talking over a
    socket pair: what a daemonic process can start. Celery's prefork pool runs each task (a Dagster
    step) in a daemonic billiard process, where multiprocessing refuses to start children, and its fork
    server cannot pickle billiard's authkey. Slower to start (each imports the parsers, ~1 s)."""

    def __init__(self, memory_bytes: int) -> None:
        parent, child = socket.socketpair()
        with child:
            self.popen = subprocess.Popen([sys.executable, "-m", "pipeline.ingest.parse_pool", str(child.fileno()),
                                           str(memory_bytes)], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        self.conn = Connection(parent.detach())

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        self.popen.kill()

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)


@dataclass
class _Worker:
    process: BaseProcess | _Subprocess
    conn: Connection
    job: int | None = None
    started: float = 0.0


class _Pool:
    def __init__(self, limits: ParseLimits, workers: int) -> None:
        self.limits = limits
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(_PRELOAD)
        self.workers = [self._start() for _ in range(workers)]

    def _start(self) -> _Worker:
        memory_bytes = self.limits.memory_mb * 2**20
        if multiprocessing.current_process().daemon:
            started = _Subprocess(memory_bytes)
            return _Worker(started, started.conn)
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child, memory_bytes), daemon=True, name="docvec-parse")
        process.start()
        child.close()
        return _Worker(process, parent)

    def replace(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._start()

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):  # a worker that died meanwhile needs no goodbye
                worker.conn.send(None)
        for worker in self.workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()


def parse_files(paths: Sequence[Path], limits: ParseLimits) -> list[Outcome]:
    """Each path parsed in a worker (``limits.workers`` at once), in the order given."""
    outcomes: list[Outcome | None] = [None] * len(paths)
    if not paths:
        return []
    ocr.check_languages(limits.ocr)
    pool = _Pool(limits, limits.worker_count(len(paths)))
    queue = deque(range(len(paths)))
    try:
        while queue or any(w.job is not None for w in pool.workers):
            for worker in pool.workers:
                if worker.job is None and queue:
                    worker.job, worker.started = queue.popleft(), time.monotonic()
                    worker.conn.send((str(paths[worker.job]), limits.ocr))
            busy = [w for w in pool.workers if w.job is not None]
            deadline = min(w.started for w in busy) + limits.seconds
            ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - time.monotonic()))
            for worker in busy:
                job = worker.job
                if job is None:
                    continue
                if worker.conn in ready:
                    try:
                        outcomes[job], spent = worker.conn.recv()
                        worker.job = None
                        if spent:
                            pool.replace(worker)
                        continue
                    except (EOFError, OSError):  # the worker died: a crash in native code, or killed
                        code = worker.process.exitcode
                        outcomes[job] = UnreadableDocument(
                            f"made its parser crash (worker exit code {code})", _COMPLETE_FIX)
                elif time.monotonic() - worker.started >= limits.seconds:
                    outcomes[job] = UnreadableDocument(
                        f"took longer than the parse time limit of {limits.seconds:g} s",
                        f"raise the source's parse_timeout_seconds, or {_COMPLETE_FIX}")
                else:
                    continue
                pool.replace(worker)
    finally:
        pool.close()
    return [outcome if outcome is not None else UnreadableDocument("was not parsed", _COMPLETE_FIX)
            for outcome in outcomes]


if __name__ == "__main__":  # a worker started by _Subprocess: the socket's descriptor, the memory limit
    for module in _PRELOAD:
        __import__(module)
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
