"""docvec on a real distributed engine: Dagster's Celery executor with a Redis broker, the code locations
and run config under deploy/celery, two or three worker processes on this machine, runs launched with
an in-process materialization as a user (`dg launch`) or a backfill would. Steps travel through Redis; per-day batches
through DOCVEC_HOME, as on shared storage."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment
from pipeline.query import search
from pipeline.sample_corpus import write_sample_corpus
from pipeline.settings import Settings
from pipeline.storage import connections
from tests.support.celery_cluster import RedisServer, Worker, materialize, redis_binary, run_config, start_worker
from tests.support.databases import fresh_database

pytestmark = pytest.mark.slow

DAYS = [dt.date.today() - dt.timedelta(days=back) for back in (18, 17, 16)]  # inside the retention window
RANGE = f"{DAYS[0]}...{DAYS[-1]}"
STEPS = {"raw_documents", "document_chunks", "chunk_embeddings", "vector_store", "vector_index",
         # the assets' checks, each a step of its own
         "vector_store_day_rows_match", "vector_store_no_open_dead_letters", "vector_index_recall_at_10",
         "vector_index_index_valid", "vector_index_vectors_sane", "vector_index_retrieval_quality"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if redis_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: scripts/test.sh should have installed it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class Cluster:
    """A database of its own, a landing folder with three real-text days, and the environment every
    worker and run process shares."""

    def __init__(self, base: Settings, dim: int, name: str, folder: Path, broker: str) -> None:
        self.settings = fresh_database(base, dim, name)
        self.folder = folder
        self.landing = folder / "landing"
        write_sample_corpus(self.landing, end=DAYS[-1], days=len(DAYS), notes_per_topic_per_day=6)
        self.broker = broker
        self.env = {**os.environ, **dagster_environment(base), "DATABASE_URL": self.settings.database_url or "",
                    "DOCVEC_LANDING_DIR": str(self.landing), "PYTHONPATH": str(PROJECT_ROOT),
                    "HF_HUB_OFFLINE": "1"}
        self.workers: list[Worker] = []

    def config(self, visibility_timeout: int | None = None) -> Path:
        return run_config(self.broker, self.folder, visibility_timeout)

    def worker(self, name: str, config: Path, queues: Sequence[str] = ()) -> Worker:
        worker = start_worker(name, config, self.env, self.folder, queues)
        self.workers.append(worker)
        return worker

    def materialize(self, config: Path, location: str = "deploy.celery.definitions",
                    partition_range: str = RANGE) -> subprocess.Popen[str]:
        return materialize(self.env, self.folder, config, location, partition_range=partition_range)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def chunk_counts(self) -> dict[dt.date, tuple[int, int]]:
        with connections.connect(self.settings) as conn:
            rows = conn.execute("SELECT ingest_date, count(*), count(DISTINCT chunk_id) FROM chunks "
                                "GROUP BY 1 ORDER BY 1").fetchall()
        return {day: (total, distinct) for day, total, distinct in rows}


def finished(process: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    output = process.communicate(timeout=timeout)[0]
    return process.returncode, output


def assert_loaded_once(cluster: Cluster, embedder) -> None:
    """Every day holds each of its files' chunks exactly once: no chunk twice, no file missing, no gap in
    a document's chunk sequence; and search finds them."""
    counts = cluster.chunk_counts()
    assert sorted(counts) == DAYS, counts
    for day, (total, distinct) in counts.items():
        assert total == distinct > 0, (day, total, distinct)  # no chunk twice
    with connections.connect(cluster.settings) as conn:
        for day in DAYS:
            files = {p.relative_to(cluster.landing / day.isoformat()).as_posix()
                     for p in (cluster.landing / day.isoformat()).rglob("*") if p.is_file()}
            rows = conn.execute("SELECT doc_id, array_agg(seq ORDER BY seq) FROM chunks WHERE ingest_date = %s "
                                "GROUP BY doc_id", (day,)).fetchall()
            assert {doc for doc, _ in rows} == files, day
            assert all(seqs == list(range(len(seqs))) for _, seqs in rows), day
        hits = search.search(conn, embedder, "how do bees survive winter", k=5, mode="hybrid")
        assert hits and {hit.ingest_date for hit in hits} <= set(DAYS)


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds:.0f} s")
        time.sleep(0.2)


@pytest.fixture()
def cluster(request, migrated, embedder, redis_server, tmp_path) -> Iterator[Cluster]:
    made = Cluster(migrated, embedder.info.dim, f"docvec_celery_{request.node.name[5:40]}", tmp_path,
                   redis_server.url)
    yield made
    made.stop()


def test_two_workers_run_multi_day_runs_and_each_day_loads_once(cluster: Cluster, embedder) -> None:
    config = cluster.config()
    first, second = cluster.worker("alpha", config), cluster.worker("beta", config)
    # Two multi-day runs at once (days 1-2 and 2-3, overlapping on purpose): while one worker holds a
    # step, the other run's step must go to the other worker.
    runs = [cluster.materialize(config, partition_range=f"{DAYS[0]}...{DAYS[1]}"),
            cluster.materialize(config, partition_range=f"{DAYS[1]}...{DAYS[2]}")]
    outputs = [finished(run) for run in runs]
    for code, output in outputs:
        assert code == 0 and "RUN_SUCCESS" in output, output[-4000:]
        assert output.count('Submitting celery task for step') == len(STEPS), output[-3000:]
    ran = {worker.name: worker.steps() for worker in (first, second)}
    assert ran["alpha"] and ran["beta"], ran  # both workers executed steps
    assert not ran["alpha"] & ran["beta"]  # and no step ran twice
    assert {step for steps in ran.values() for _, step in steps} == STEPS
    assert_loaded_once(cluster, embedder)


def test_a_worker_killed_during_embedding_hands_the_step_to_the_other(cluster: Cluster, embedder) -> None:
    # A short visibility timeout: the step of a vanished worker comes back to the queue after 20 s.
    config = cluster.config(visibility_timeout=20)
    workers = [cluster.worker("alpha", config), cluster.worker("beta", config)]
    run = cluster.materialize(config)

    def holder() -> Worker | None:
        return next((w for w in workers if any(step == "chunk_embeddings" for _, step in w.steps("STEP_START"))), None)

    _wait_for(lambda: holder() is not None or run.poll() is not None, 300, "no worker started chunk_embeddings")
    victim = holder()
    assert victim is not None, finished(run)[1][-3000:]
    assert not any(step == "chunk_embeddings" for _, step in victim.steps()), "the step ended before the kill"
    victim.kill()
    survivor = next(w for w in workers if w is not victim)
    code, output = finished(run)
    assert code == 0 and "RUN_SUCCESS" in output, output[-4000:]
    assert any(step == "chunk_embeddings" for _, step in survivor.steps()), survivor.output()[-3000:]
    assert_loaded_once(cluster, embedder)


def test_a_run_resumes_after_a_broker_restart_between_steps_and_a_rerun_changes_nothing(cluster: Cluster, embedder,
                                                                                       redis_server) -> None:
    config = cluster.config()
    workers = [cluster.worker("alpha", config), cluster.worker("beta", config)]
    run = cluster.materialize(config)

    def chunked() -> bool:
        return any(step == "document_chunks" for w in workers for _, step in w.steps())

    _wait_for(lambda: chunked() or run.poll() is not None, 300, "document_chunks did not finish")
    # Down for 3 s: the run's next submission and its result polling retry (deploy/celery/run_config.yaml),
    # the workers reconnect, and the queues and results survive in Redis's append-only file.
    redis_server.restart(down_seconds=3)
    code, output = finished(run)
    assert code == 0 and "RUN_SUCCESS" in output, output[-4000:]
    assert any(step == "chunk_embeddings" for w in workers for _, step in w.steps())
    assert_loaded_once(cluster, embedder)
    # A rerun of the same range after the restart changes nothing.
    before = cluster.chunk_counts()
    code, output = finished(cluster.materialize(config))
    assert code == 0, output[-4000:]
    assert cluster.chunk_counts() == before


def test_embedding_runs_on_the_gpu_queue_and_the_rest_on_the_default_queue(cluster: Cluster, embedder) -> None:
    config = cluster.config()
    cpu = cluster.worker("cpu", config)  # the default queue (dagster)
    gpu = cluster.worker("gpu", config, queues=["gpu"])  # only the gpu queue, as on a GPU host
    code, output = finished(cluster.materialize(config, location="deploy.celery.gpu_definitions"))
    assert code == 0 and "RUN_SUCCESS" in output, output[-4000:]
    assert 'Submitting celery task for step "chunk_embeddings" to queue "gpu"' in output
    assert {step for _, step in gpu.steps()} == {"chunk_embeddings"}
    assert {step for _, step in cpu.steps()} == STEPS - {"chunk_embeddings"}
    assert_loaded_once(cluster, embedder)

