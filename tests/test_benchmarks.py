"""The benchmark scripts start from nothing as a newcomer runs them: a fresh home gets its embedded
server; an unreachable server is one line saying what to do, never a traceback. And none rots: every
benchmark the README lists runs here at its smoke size (``--smoke``: its own code path on tiny data) and
must print the figures it exists for, each of which must parse."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli.envfile import PROJECT_ROOT
from pipeline.settings import Settings
from pipeline.storage import admin, urls
from pipeline.storage.embedded_server import server_settings, stop_embedded_server
from tests.support import corpora


def _benchmark(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.database  # starts an embedded server of its own, in a subprocess
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
    # The new cluster got this machine's shared_buffers (the searches' HNSW pages), not PostgreSQL's 128 MB.
    assert f"shared_buffers = '{server_settings()['shared_buffers']}'" in (home / "pgdata" / "postgresql.conf").read_text()


def test_an_unreachable_server_is_one_line(tmp_path) -> None:
    env = {**os.environ, "DOCVEC_HOME": str(tmp_path), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/docvec"}
    done = _benchmark(["benchmarks.copy_benchmark", "--rows", "10"], env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("copy_benchmark: cannot reach PostgreSQL at postgresql://nobody@127.0.0.1:1"), lines
    assert "docvec up" in done.stderr


NUMBER = r"([-+]?[\d,]*\.?\d+)"  # one figure: 12, 1,200, 0.983, +0.012


@dataclass(frozen=True)
class Smoke:
    """How one README benchmark is checked at smoke size: the lines its output must hold (each ``{n}``
    a figure that must parse), extra arguments, what it needs from the machine (a callable that raises
    ``CorpusUnavailable`` when that cannot be installed), whether its subprocess loads the model, and
    the benchmark run right after it on what it left (``--reuse``)."""
    lines: tuple[str, ...]
    args: tuple[str, ...] = ()
    needs: Callable[[], object] | None = None
    model: bool = False
    then: str | None = None


def _formats_corpus() -> None:
    """What formats_benchmark builds its files with: the Python documentation, pandoc, Chromium and
    readxl's workbooks (each installed when missing, as root)."""
    corpora.python_docs()
    corpora.tool("pandoc", "pandoc")
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        corpora.tool("chromium", "chromium")
    with tempfile.TemporaryDirectory() as probe:
        corpora.readxl_workbook("datasets.xlsx", Path(probe) / "datasets.xlsx")


SMOKE: dict[str, Smoke] = {
    "copy_benchmark": Smoke((r"^ratio COPY / executemany:\s+{n}x", r"^ratio COPY / per-row INSERT:\s+{n}x",
                             r"^COPY vectors alone:\s+{n} rows/s")),
    "retention_benchmark": Smoke((r"^ratio 10N/N, DETACH\+DROP:\s+{n}", r"^ratio 10N/N, DELETE\+VACUUM:\s+{n}",
                                  r"^DELETE\+VACUUM / DROP at 10N:\s+{n}x")),
    "incremental_benchmark": Smoke((r"^  unchanged rerun\s+{n}\s+0\s+0\s+{n} of {n}",
                                    r"^  unchanged rerun speed-up: {n}x",
                                    r"^Dagster's own per-run cost on the unchanged rerun: {n} s",
                                    r"^one-day-changed rerun embedded {n} chunks through Dagster and {n} alone"),
                                   model=True),
    "rerun_benchmark": Smoke((r"^  first run\s+{n}s\s+{n}s\s+{n}\s+{n}\s+{n}\s+0 of {n}",
                              r"^  unchanged rerun\s+{n}s\s+{n}s\s+{n}\s+0\s+0\s+{n} of {n}",
                              r"^  re-landed rerun\s+{n}s\s+{n}s\s+{n}\s+0\s+0\s+{n} of {n}",  # hashed, not parsed
                              r"^  unchanged rerun: {n}x shorter as the UI shows runs .* whole command {n}x",
                              r"^  re-landed rerun: {n}x shorter as the UI shows runs .* whole command {n}x"),
                             needs=corpora.python_docs, model=True),
    "index_benchmark": Smoke((*(rf"^\s+{{n}} {method}\s+{{n}}\s+{{n}}\s+{{n}}\s+{{n}}\s+{{n}}$"
                                for method in ("exact", "ivfflat", "hnsw")),
                              r"^layout: .* build {n} s .* recall@10 {n}, p50 {n} ms, p99 {n} ms")),
    "layout_benchmark": Smoke((r"^per-day .* index builds\s+{n} s .* recall@10 {n}",
                               r"^sealed .* sealing\s+{n} s .* recall@10 {n}",
                               r"^next day\s+load \+ index {n} s; sealing {n} s .*; retention {n} s",
                               r"^after .* p50\s+{n} ms\s+p99\s+{n} ms\s+recall@10 {n}",
                               r"^one index 1 partitions \(1 indexed, 1 blocks\)\s+rebuild\s+{n} s",
                               r"^side by side, docvec's defaults: sealed at ef_search {n} p50 {n} ms p99 {n} ms; "
                               r"one index at {n} p50 {n} ms p99 {n} ms; p50 {n}x, per query \(median\) {n}x",
                               r"^\s+one index\s+ef_search\s+16\s+p50\s+{n} ms\s+p99\s+{n} ms\s+recall@10 {n}",
                               r"^sealed at ef_search {n} \(recall@10 {n}\) / one index at ef_search {n} "
                               r"\(recall@10 {n}\): p50 {n}x, p99 {n}x; both at ef_search {n}: p50 {n}x$",
                               r"^  docvec's default over {n} HNSW indexes: ef_search {n} \(walked_ef_search of the",
                               r"^  all days\s+{n} HNSW\s+k=50\s+walked\s+ef_search\s+{n}\s+p50\s+{n} ms .* recall@50 {n}",
                               r"^  since \S+\s+{n} HNSW\s+k=10\s+recorded\s+ef_search\s+{n}\s+p50",
                               r"^parallel partition scans at ef_search {n}: days up to \S+ \| from \S+ on two connections "
                               r"at once p50 {n} ms against one statement {n} ms \({n}x\); hits identical for {n} of {n}",
                               r"^  why, p50 ms: older span alone {n}; newer span alone {n}; older span beside newer {n}; "
                               r"newer span beside older {n}; newer span beside itself {n}$",
                               r"^docvec's defaults: sealed at the walked ef_search {n} \(recall@10 {n}\) / one index "
                               r"at {n} \(recall@10 {n}\): p50 {n}x, p99 {n}x$",
                               r"^(?:side by side, each at its fastest ef_search with recall@10 >= 0.95: sealed at "
                               r"ef_search {n} p50 {n} ms|recall@10 >= 0.95: not reached in the sweep by )")),
    "concurrency_benchmark": Smoke((r"^idle\s+{n}\s+{n}\s+0\s+", r"^loading a [\d,]+-row day\s+{n}\s+{n}\s+0\s+",
                                    r"^HNSW build, [\d,]+-row day \(CONCURRENTLY\)\s+{n}\s+{n}\s+0\s+",
                                    r"^retention dropping the oldest day\s+{n}\s+{n}\s+0\s+")),
    "embedding_benchmark": Smoke((r"^   raw model\.encode\s+{n} chunks/s", r"^   Dagster materialization\s+{n} chunks/s",
                                  r"^   ratio {n} \(target >= 0\.85\)", r"^   torch\s+{n} chunks/s\s+{n}x\s+cosine mean {n}",
                                  r"RSS after loading the model {n} MiB, .* peak {n} MiB"), model=True),
    "formats_benchmark": Smoke((r"^  pdf    docvec \(pypdfium2\)\s+{n}\s+{n}\s+{n}\s+{n}\s+-$",
                                r"^  html   docvec \(trafilatura\)\s+{n}\s+{n}\s+{n}\s+{n}",
                                r"^  parsing / embedding: {n}x"), needs=_formats_corpus, model=True),
    # A downloaded object is also HEADed once, for its docvec-readers metadata; an unchanged one never is.
    "object_storage_benchmark": Smoke((r"^  first ingest\s+{n}\s+1\s+{n}\s+{n}\s+",
                                       r"^  unchanged rerun\s+{n}\s+1\s+0\s+0\s+unchanged",
                                       r"^  rerun, 1 object edited\s+{n}\s+1\s+1\s+1\s+1 read"), model=True),
    "retrieval_benchmark": Smoke((r"^docvec\s+hybrid\s+{n}\s+{n}\s+{n}\s+{n}",
                                  r"^docvec\s+hybrid, no feedback\s+{n}\s+{n}\s+{n}\s+{n}",
                                  r"^peer \(256-token windows\) hybrid\s+{n}\s+{n}\s+{n}\s+{n}",
                                  r"^docvec hybrid - peer hybrid: MRR@10 {n}, hit@1 {n}",
                                  r"^docvec hybrid list, default \(documents take turns\)\s+page hit@5 {n}\s+"
                                  r"on-topic chunks@5 {n}\s+@10 {n}"),
                                 args=("--reuse",), needs=corpora.python_eval_pages, model=True,
                                 then="retrieval_sweep"),
    "header_recipes": Smoke((r"^python-docs\s+title > path, 32 tokens\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}",
                             r"^git-docs\s+title, 32 tokens\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}",
                             r"^git-docs\s+title > path, 32 tokens, cap 128(?:\s+{n}){9}$"),
                            args=("--recipes", "path/32", "none/32", "--max-tokens", "128"),
                            needs=lambda: (corpora.python_eval_pages(), corpora.git_eval_pages()), model=True),
    "corpus_adaptation": Smoke((r"^python-docs\s+bundled MiniLM\s+{n}(?:\s+{n}){7}\s+-$",
                                r"^python-docs\s+adapted, ict\s+{n}(?:\s+{n}){7}\s+{n} pairs, {n} steps, {n} s$"),
                               needs=corpora.python_eval_pages, model=True),
    "retrieval_sweep": Smoke((r"vector alone \(exact\): MRR@10 {n}, hit@1 {n}", r"^BM25 k1\s+0\.9\s+{n}\s+{n}\s+{n}$",
                              r"^fusion\s+rrf/chunk\s+{n}\s+{n}$",
                              r"^feedback terms \(default\)\s+0\.2\s+{n}\s+{n}\s+{n}$"), model=True),
    "rerank_benchmark": Smoke((r"^tiny \(1 layer, 32 wide\)\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}$",
                               r"^MiniLM-L6-sized \(6 layers, 384 wide\)\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}$"),
                              needs=corpora.python_docs, model=True),
    "hybrid_benchmark": Smoke((r"^\s+{n}\s+{n}\s+{n} hybrid\s+{n}\s+{n}\s+{n}",
                               r"BM25 text p50 / ts_rank_cd text p50 = {n}")),
    "bm25_benchmark": Smoke((r"^all classes\s+early stop \(docvec\)\s+{n}\s+{n}\s+{n}\s+100\.0%$",  # always exact
                             r"^all classes\s+early stop, all ids\s+{n}\s+{n}\s+{n}\s+100\.0%$",
                             r"^early stop / before: p50 {n}, p99 {n}; early stop / complete: p50 {n}, p99 {n}; "
                             r"early stop / all ids: p50 {n}, p99 {n}$",
                             # as a principal who may read everything: the owner's hits, each way
                             r"^all classes\s+principal: function \(0017\)\s+{n}\s+{n}\s+{n}$",
                             r"^identifier\s+principal: function \(0017\)\s+{n}\s+{n}\s+{n}\s+100\.0%$",
                             r"^one common word\s+principal: policies alone\s+{n}\s+{n}\s+{n}\s+100\.0%$",
                             r"^p50 as a principal / as the owner: function {n}, policies alone {n}$")),
    "serve_benchmark": Smoke(tuple(rf"^\s+{{n}} {backend}\s+{mode}\s+{{n}}\s+{{n}}\s+{{n}}\s+{{n}}\s+0$"  # no errors
                                   for mode in ("vector", "text", "hybrid", "hybrid-no-feedback", "hybrid-no-openings")
                                   for backend in ("auto", "torch")), model=True),
    "permissions_benchmark": Smoke(tuple(rf"^{caller}\s+{{n}}\s+{{n}}\s+{{n}}x\s+0\s+0\s+(?:exact|index walk)"  # k hits,
                                         for caller in (r"owner \(no RLS\)", r"group:all \(100%\)",  # no leak, a plan
                                                        r"group:few \(1%\)", r"group:rare \(0\.1%\)",
                                                        r"group:few, (?:exact|walk)", r"group:rare, (?:exact|walk)"))),
    "forget_benchmark": Smoke((r"^\s+{n} chunks\s+{n} partitions \({n} indexed\)\s+erased {n} chunks on {n} days: "
                               r"erase {n} s, vacuum {n} s; rebuild of the blocks {n} s",
                               r"^\s+rebuild / erase at {n} chunks: {n}x")),
    "collection_churn_benchmark": Smoke((r"^  collection\s+{n} \S+" + r"\s+{n}" * 11 + r"\s+0\s+0\s",  # 0 wrong, 0 missed
                                         r"^run time: first run {n} s; later days median {n} s",
                                         r"^store after {n} days: {n} MB, live collection {n} MB .*: {n}x",
                                         r"^wrong results: 0 ",
                                         r"^day folders, full daily snapshot: {n} of {n} days run"),
                                        needs=corpora.debian_doc_collection, model=True),
    "halfvec_benchmark": Smoke((*(rf"^\s*{storage}\s+{{n}} {method}\s+{{n}}\s+{{n}}\s+{{n}}\s+{{n}}\s+{{n}}$"
                                  for storage in ("vector", "halfvec") for method in ("exact", "hnsw", "ivfflat")),
                                r"^halfvec / vector: table {n}x, hnsw {n}x size, {n}x build, recall@10 {n}",
                                r"^hybrid\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}\s+{n}$",
                                r"^vector mode top-10 chunks: identical lists for {n} of {n} questions"),
                               needs=corpora.python_eval_pages, model=True),
    "scale_benchmark": Smoke((r"^{n} chunks: {n} partitions \({n} blocks\); upkeep: sealed .*; retention \S+ -> ",
                              r"^vector recall@10 \(vs exact\)\s+{n}\s+{n}\s+{n}x$",
                              r"^text top 10 = complete BM25 \(share\)\s+1\.00\s+1\.00\s+1\.00x$",  # always exact
                              *(rf"^{mode} p99 \(ms\)\s+{{n}}\s+{{n}}\s+{{n}}x$" for mode in ("vector", "text", "hybrid")))),
    "ocr_benchmark": Smoke((r"^  scanned \(OCR\)\s+hybrid\s+{n}\s+{n}\s+{n}", r"^scanned - text, hybrid MRR@10: {n}",
                            r"^OCR character error rate: {n}%", r"^OCR / embedding: {n}x",
                            r"pytesseract page by page {n} pages/s; tesseract CLI .* {n} pages/s"),
                           needs=lambda: (corpora.python_docs(), corpora.tool("chromium", "chromium")), model=True),
}
# Run by the benchmark before them (``then``), not on their own.
FOLLOWERS = {smoke.then for smoke in SMOKE.values() if smoke.then}
# What a benchmark run with ``--reuse`` keeps on the server (retrieval_benchmark: its docvec variant).
KEPT_DATABASES = {"retrieval_benchmark": ("docvec_bench_retrieval_0",)}


def readme_benchmarks() -> set[str]:
    return set(re.findall(r"python -m benchmarks\.(\w+)", (PROJECT_ROOT / "README.md").read_text()))


def test_every_benchmark_the_readme_lists_has_a_smoke_run() -> None:
    assert readme_benchmarks() == set(SMOKE)


def figures(output: str, line: str) -> list[float]:
    """The figures of the first output line matching ``line`` (``{n}``: a number); fails when none does."""
    found = re.search(line.replace("{n}", NUMBER), output, re.M)
    assert found, f"no line matching {line!r} in:\n{output[-3000:]}"
    return [float(group.replace(",", "")) for group in found.groups()]


def _smoke_run(name: str, smoke: Smoke) -> float:
    """Run the benchmark at smoke size; check its exit, its figures; its seconds."""
    started = time.perf_counter()
    done = _benchmark([f"benchmarks.{name}", "--smoke", *smoke.args], dict(os.environ))
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for line in smoke.lines:
        figures(done.stdout, line)
    return seconds


@pytest.fixture
def server(settings: Settings) -> Settings:
    """The session's server, running before a benchmark's subprocess looks for it."""
    urls.server_url(settings)
    return settings


@pytest.mark.benchmark
@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.model] if smoke.model else [])
                                  for name, smoke in SMOKE.items() if name not in FOLLOWERS])
def test_the_benchmark_runs_at_smoke_size_and_prints_its_figures(name: str, server: Settings) -> None:
    smoke = SMOKE[name]
    if smoke.needs is not None:
        try:
            smoke.needs()
        except corpora.CorpusUnavailable as missing:
            pytest.skip(f"{name} needs what this machine lacks and cannot install: {missing}")
    timings = []
    try:
        for benchmark in (name, smoke.then) if smoke.then else (name,):
            timings.append(f"{benchmark} {_smoke_run(benchmark, SMOKE[benchmark]):.1f} s")
    finally:
        if "--reuse" in smoke.args:  # the databases it kept for the run after it
            for kept in KEPT_DATABASES.get(name, ()):
                admin.drop_database(server, kept)
    print("smoke:", ", ".join(timings))
