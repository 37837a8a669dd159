"""Scale-out: the deploy/ configs validate against Dagster's own schemas, and several runs over
overlapping day ranges, each step in its own process, load every day exactly once."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInvalidConfigError, QueuedRunCoordinator, job, op, validate_run_config

from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment
from tests.support.sample import day_folder

DEPLOY = PROJECT_ROOT / "deploy"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def validate_against(schema: object, config: dict) -> None:
    """Validate ``config`` against a Dagster config schema (a run launcher's or coordinator's
    ``config_type()``) through public API only: as the config of a one-op job."""
    @op(name="probe", config_schema=schema)
    def probe() -> None: ...

    @job
    def holder() -> None:
        probe()

    validate_run_config(holder, {"ops": {"probe": {"config": config}}})


def test_kubernetes_instance_and_run_configs_validate(monkeypatch) -> None:
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    from deploy.kubernetes.definitions import defs

    instance = _yaml(DEPLOY / "kubernetes" / "dagster.yaml")
    for section, cls in (("run_launcher", K8sRunLauncher), ("run_coordinator", QueuedRunCoordinator)):
        assert instance[section]["class"] == cls.__name__
        validate_against(cls.config_type(), instance[section]["config"])
    with pytest.raises(DagsterInvalidConfigError, match="job_namepsace"):  # a typo fails the check
        validate_against(K8sRunLauncher.config_type(), {**instance["run_launcher"]["config"], "job_namepsace": "x"})

    job = defs.resolve_job_def("ingest_daily")
    run_config = _yaml(DEPLOY / "kubernetes" / "run_config.yaml")
    resolved = validate_run_config(job, run_config)
    assert "chunk_embeddings" in resolved["execution"]["k8s"]["per_step_k8s_config"]
    broken = {**run_config, "execution": {"config": {**run_config["execution"]["config"], "max_concurent": 4}}}
    with pytest.raises(DagsterInvalidConfigError):  # the check is real: a typo fails it
        validate_run_config(job, broken)

    tags = _yaml(DEPLOY / "kubernetes" / "gpu_run_tags.yaml")
    k8s = UserDefinedDagsterK8sConfig.from_dict(tags["dagster-k8s/config"])
    assert k8s.container_config["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_celery_run_config_validates(monkeypatch) -> None:
    from deploy.celery.definitions import defs

    monkeypatch.setenv("DOCVEC_CELERY_BROKER", "redis://localhost:6379/0")
    monkeypatch.setenv("DOCVEC_CELERY_BACKEND", "redis://localhost:6379/1")
    resolved = validate_run_config(defs.resolve_job_def("ingest_daily"), _yaml(DEPLOY / "celery" / "run_config.yaml"))
    assert "redis://localhost:6379/0" in str(resolved["execution"])


@pytest.mark.slow
def test_parallel_runs_over_overlapping_day_ranges_load_every_day_once(migrated, conn) -> None:
    """Three runs at once over overlapping ranges (days 0–2, 1–3, 2–4), multiprocess executor: no
    duplicates, no lost day, no deadlock, every run succeeds."""
    landing = migrated.landing_dir
    today = dt.date.today()
    days = [today - dt.timedelta(days=back) for back in (12, 11, 10, 9, 8)]
    for day in days:
        for i in range(4):
            (day_folder(landing, day) / f"parallel-{i}.md").write_text(f"Parallel run note {i} for {day}: glaze {i}.")
    # cwd is the session's home, not the checkout, so a developer's .env there cannot redirect the runs.
    env = {**os.environ, "DOCVEC_HOME": str(migrated.home), "PYTHONPATH": str(PROJECT_ROOT),
           **dagster_environment(migrated)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    started = time.monotonic()
    runs = [subprocess.Popen([dagster, "asset", "materialize", "-m", "tests.multiprocess_location",
                              "--select", "group:ingest", "--partition-range", f"{days[i]}...{days[i + 2]}"],
                             cwd=migrated.home, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for i in range(3)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    elapsed = time.monotonic() - started
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-4000:]
        assert "RUN_SUCCESS" in output
    for output in outputs:  # each step ran in a process of its own
        assert output.count("STEP_WORKER_STARTED") >= 4, output[-3000:]
    for day in days:
        rows = conn.execute("SELECT count(*), count(DISTINCT chunk_id) FROM chunks WHERE ingest_date = %s",
                            (day,)).fetchone()
        assert rows == (4, 4), (day, rows)
    assert elapsed < 900
