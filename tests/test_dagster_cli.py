"""The README's Dagster commands as a user types them: `dg launch` runs (a day, a range of days as one
run) that print no warning, on the instance `.env` names; and the names the CLI passes Dagster."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shlex
import subprocess

import pytest
from dagster import DagsterInstance

from pipeline.cli import dagster_runs
from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment, write_env_file
from pipeline.ops.status import day_statuses
from pipeline.storage import connections
from tests.support.databases import fresh_database
from tests.support.sample import day_folder

README = PROJECT_ROOT / "README.md"
# A command of the README that runs assets of the default code location (the Celery one needs workers),
# in whichever form the README gives it (`dagster asset materialize` before Dagster 1.13 superseded it).
LOCAL_RUN = re.compile(r"^(dg launch|dagster asset materialize) -m pipeline\.definitions ")
RANGE = re.compile(r"\d{4}-\d{2}-\d{2}\.\.\.\d{4}-\d{2}-\d{2}")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def readme_runs() -> list[str]:
    return [line.strip() for line in README.read_text().splitlines() if LOCAL_RUN.match(line)]


def test_the_readme_runs_assets_with_dg_launch_only() -> None:
    """`dagster asset materialize` warns on every call under Dagster 1.13; no README command uses it."""
    assert not [line for line in README.read_text().splitlines() if line.startswith("dagster asset materialize")]
    runs = readme_runs()
    assert any("--partition-range" in run for run in runs) and any("--partition " in run for run in runs), runs


def test_the_cli_names_the_ingest_job_the_definitions_define() -> None:
    from schedules import ingest_job

    assert ingest_job.name == dagster_runs.INGEST_JOB
    assert f"--job {dagster_runs.INGEST_JOB}" in README.read_text()


@pytest.mark.slow
def test_the_readme_runs_print_no_warning_and_land_in_the_instance(migrated, embedder, tmp_path,
                                                                  monkeypatch) -> None:
    """Each run of the README, its dates moved onto a tiny landing zone, from a folder
    holding the `.env` that `docvec up` writes, with DAGSTER_HOME exported as the README says: no
    warning and no telemetry notice, exit 0, the runs recorded in the instance, the days loaded."""
    scratch = fresh_database(migrated, embedder.info.dim, f"docvec_readme_runs_{os.getpid()}")
    settings = dataclasses.replace(scratch, home=tmp_path / "home")
    today = dt.date.today()
    days = [today - dt.timedelta(days=back) for back in (3, 2, 1)]
    for day in days:
        for n in range(2):
            (day_folder(settings.landing_dir, day) / f"note-{n}.md").write_text(
                f"# Kiln note {n}\n\nThe kiln reached cone {n + 6} on {day}.\n")
    project = tmp_path / "project"
    project.mkdir()
    write_env_file(dagster_environment(settings), project / ".env")
    user = {key: value for key, value in os.environ.items()
            if key not in dagster_environment(settings) and key != "DOCVEC_SEARCH_DATABASE_URL"}
    user |= {"HOME": str(tmp_path / "user-home"), "DAGSTER_HOME": str(PROJECT_ROOT)}

    runs = readme_runs()
    assert runs
    for readme_command in runs:
        on_our_days = (RANGE.sub(f"{days[0]}...{days[1]}", readme_command) if RANGE.search(readme_command)
                       else DAY.sub(str(days[2]), readme_command))
        args = shlex.split(on_our_days)
        done = subprocess.run([dagster_runs.executable(args[0]), *args[1:]], cwd=project, env=user, text=True,
                              capture_output=True, timeout=600, check=False)
        printed = done.stdout + done.stderr
        assert done.returncode == 0, printed[-3000:]
        assert "Warning" not in printed, [line for line in printed.splitlines() if "Warning" in line]
        assert "Telemetry" not in printed

    for key, value in dagster_environment(settings).items():
        monkeypatch.setenv(key, value)
    with DagsterInstance.get() as instance:
        finished = instance.get_runs()
    assert sorted(run.status.value for run in finished) == ["SUCCESS"] * len(runs)
    assert {(run.tags.get("dagster/partition"), run.tags.get("dagster/asset_partition_range_start"),
             run.tags.get("dagster/asset_partition_range_end")) for run in finished} >= {
        (str(days[2]), None, None), (None, str(days[0]), str(days[1]))}
    with connections.connect(settings) as conn:
        loaded = {status.day: (status.documents, status.chunks) for status in day_statuses(conn)}
    assert loaded == dict.fromkeys(days, (2, 2))
