"""The project's ``.env``: how plain ``dagster`` commands find docvec's instance with nothing exported.

Dagster's CLI loads ``.env`` from the working directory before it reads ``$DAGSTER_HOME/dagster.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.settings import Settings
from pipeline.storage.urls import dagster_storage_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def dagster_environment(settings: Settings, project_root: Path = PROJECT_ROOT) -> dict[str, str]:
    env = {
        "DAGSTER_HOME": str(project_root),
        "DOCVEC_HOME": str(settings.home),
        "DOCVEC_DAGSTER_STORAGE_URL": dagster_storage_url(settings),
        "DOCVEC_DAGSTER_ARTIFACTS": str(settings.dagster_artifacts_dir),
        "DOCVEC_DAGSTER_COMPUTE_LOGS": str(settings.dagster_artifacts_dir / "compute_logs"),
    }
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    if settings.dagster_database_url:
        env["DAGSTER_DATABASE_URL"] = settings.dagster_database_url
    if settings.pgbouncer:
        env["DOCVEC_PGBOUNCER"] = "1"
    return env


def write_env_file(values: Mapping[str, str], path: Path) -> Path:
    """Set ``values`` in the env file, keeping every other line the user wrote."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    managed = [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(kept + managed) + "\n")
    path.chmod(0o600)  # it may hold a database password
    return path
