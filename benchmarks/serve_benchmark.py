"""Search over HTTP as applications call it: `docvec serve` (one uvicorn process, the bundled model
loaded once, a pool of read-only connections) under concurrent clients, each on its own keep-alive
connection sending distinct queries back to back. Prints p50/p99 latency and queries/s per mode and
number of clients, at each store size, in one run.

The stores are the ones benchmarks/hybrid_benchmark.py builds (its ``load``: day swaps, policy indexes,
10-day sealed blocks), reused when that benchmark ran with ``--reuse``, built here otherwise. Latency is
measured at the client and includes embedding the query (hybrid and vector modes) on the server's CPU.

``--query-backends auto torch`` measures the query encoders side by side (``docvec serve --query-backend``:
auto encodes with ONNX Runtime where it is installed).

Usage: ``python -m benchmarks.serve_benchmark [--sizes 100000 1000000] [--days 10 30] [--clients 1 4 8]
[--seconds 15] [--query-backends auto torch]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from benchmarks import hybrid_benchmark, smoke
from benchmarks.server import benchmark_main, scratch_settings
from pipeline.cli.envfile import dagster_environment
from pipeline.settings import Settings
from tests.support.network import free_port


def start_server(settings: Settings, home: Path, query_backend: str = "auto") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, **dagster_environment(settings), "DOCVEC_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--port", str(port),
                                "--pool-size", "16", "--log-level", "warning", "--query-backend", query_backend], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("docvec serve did not become healthy within 120 s")


# What each row asks for: the three modes as applications call them, hybrid without its feedback terms
# (``feedback_weight`` 0) and without its documents' openings too (``opening_weight`` 0), so the cost of
# each is measured beside it.
VARIANTS: dict[str, dict[str, str | int | float]] = {
    "vector": {"mode": "vector"}, "text": {"mode": "text"}, "hybrid": {"mode": "hybrid"},
    "hybrid-no-feedback": {"mode": "hybrid", "feedback_weight": 0.0},
    "hybrid-no-openings": {"mode": "hybrid", "opening_weight": 0.0, "feedback_weight": 0.0}}


def run_clients(port: int, variant: str, clients: int, seconds: float,
                phrases: list[str]) -> tuple[list[float], int]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = n
        while time.monotonic() < stop:
            query = urllib.parse.urlencode({"q": phrases[i % len(phrases)], "k": 10, **VARIANTS[variant]})
            started = time.perf_counter()
            connection.request("GET", f"/search?{query}")
            response = connection.getresponse()
            body = response.read()
            latencies[n].append((time.perf_counter() - started) * 1000)
            if response.status != 200 or "hits" not in json.loads(body):
                errors[n] += 1
            i += clients
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for per in latencies for x in per[1:]], sum(errors)  # each client's first request warms up


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--days", type=int, nargs="+", default=[10])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--query-backends", nargs="+", default=["auto"], choices=("auto", "torch", "onnx"),
                        help="docvec serve --query-backend values to measure side by side (a server each)")
    args = smoke.parse_args(parser, {"sizes": [400], "days": [2], "clients": [1, 2], "seconds": 0.5,
                                     "query_backends": ["auto", "torch"]})
    words = hybrid_benchmark.vocabulary()
    lines = []
    for rows, day_count in zip(args.sizes, args.days, strict=True):
        name = f"{hybrid_benchmark.DATABASE}_{rows}"
        settings = hybrid_benchmark.reusable(name, rows, day_count)
        if settings is None:
            settings = scratch_settings(name, 384)
            hybrid_benchmark.load(settings, rows, day_count, words)
        phrases = hybrid_benchmark.phrases(5_000, words, day_count)
        for backend in args.query_backends:
            with tempfile.TemporaryDirectory() as home:
                process, port = start_server(settings, Path(home), backend)
                try:
                    for variant in VARIANTS:
                        for clients in args.clients:
                            latencies, errors = run_clients(port, variant, clients, args.seconds, phrases)
                            lat = np.array(latencies)
                            lines.append(f"{rows:>10,} {backend:<7} {variant:<18} {clients:>7} "
                                         f"{np.percentile(lat, 50):>8.1f} "
                                         f"{np.percentile(lat, 99):>8.1f} {len(lat) / args.seconds:>8.1f} {errors:>6}")
                finally:
                    process.terminate()
                    process.wait(timeout=30)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; docvec serve (1 process, pool of 16) and its "
          f"clients on the same machine; {args.seconds:.0f} s per row, k=10, distinct queries")
    print(f"{'rows':>10} {'queries':<7} {'mode':<18} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'q/s':>8} {'errors':>6}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
