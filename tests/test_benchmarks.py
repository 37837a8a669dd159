"""The benchmark scripts start from nothing as a newcomer runs them: a fresh home gets its embedded
server; an unreachable server is one line saying what to do, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.cli.envfile import PROJECT_ROOT
from pipeline.storage.embedded_server import stop_embedded_server


def _benchmark(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_a_benchmark_on_a_fresh_home_starts_the_embedded_server(tmp_path) -> None:
    home = tmp_path / "fresh"
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DAGSTER_DATABASE_URL")}
    env["DOCVEC_HOME"] = str(home)
    try:
        done = _benchmark(["benchmarks.copy_benchmark", "--rows", "200", "--per-row-rows", "20", "--repeats", "1"], env)
    finally:
        stop_embedded_server(home / "pgdata")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "binary COPY" in done.stdout and "ratio COPY / executemany" in done.stdout
    assert (home / "pgdata" / "PG_VERSION").exists()


def test_an_unreachable_server_is_one_line(tmp_path) -> None:
    env = {**os.environ, "DOCVEC_HOME": str(tmp_path), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/docvec"}
    done = _benchmark(["benchmarks.copy_benchmark", "--rows", "10"], env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("copy_benchmark: cannot reach PostgreSQL at postgresql://nobody@127.0.0.1:1"), lines
    assert "docvec up" in done.stderr
