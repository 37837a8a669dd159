"""Where docvec keeps its state and which database it talks to.

Environment variables are read only when these functions are called (never at import time):

* ``DOCVEC_HOME``   – data dir for the embedded server, Dagster artifacts and staging (default ``./.docvec``)
* ``DATABASE_URL``  – use this PostgreSQL (with pgvector) instead of the embedded server
* ``DAGSTER_DATABASE_URL`` – Dagster's storage database (default: database ``dagster`` on the same server)
* ``DOCVEC_PGBOUNCER`` – ``1`` when ``DATABASE_URL`` points at PgBouncer in transaction mode
* ``DOCVEC_SEARCH_DATABASE_URL`` – where searches go (a read replica); default: ``DATABASE_URL``
* ``DOCVEC_LANDING_DIR`` – the landing zone: a path or an ``s3://``, ``gs://``, ``az://`` URL; default
  ``$DOCVEC_HOME/landing``
* ``DOCVEC_SOURCE_MODE`` – ``days`` (default: one ``YYYY-MM-DD/`` folder per ingest day) or ``collection``
  (the landing is one living folder or prefix, mirrored by a snapshot on each run)
* ``DOCVEC_PUSHGATEWAY_URL`` – a Prometheus Pushgateway the pipeline pushes each step's figures to
* ``DOCVEC_METRICS_TEXTFILE_DIR`` – a folder the pipeline writes them to for node_exporter's textfile collector
* ``DOCVEC_RERANKER`` – a local sentence-transformers CrossEncoder directory: searches rerank their first
  candidates with it (``pipeline/query/rerank.py``); unset, no reranking
* ``DOCVEC_RERANK_CANDIDATES`` – how many fused candidates it reranks (default 50)
* ``DOCVEC_VECTOR_STORAGE`` – what ``docvec migrate`` stores vectors as (migration 0016): ``halfvec`` (16-bit
  floats, the default) or ``vector`` (32-bit); a store keeps its type until migrated again
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME_DIRNAME = ".docvec"
DOCVEC_DATABASE = "docvec"
DAGSTER_DATABASE = "dagster"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    dagster_database_url: str | None
    pgbouncer: bool
    search_database_url: str | None = None
    landing_url: str | None = None
    source_mode: str = "days"  # as set: the source resource checks it
    pushgateway_url: str | None = None
    metrics_textfile_dir: Path | None = None
    reranker: Path | None = None
    rerank_candidates: str | None = None  # as set: pipeline/query/rerank.py checks it
    vector_storage: str | None = None  # as set: pipeline/storage/vector_storage.py checks it

    @property
    def landing(self) -> str:
        """Where ingest days land: ``DOCVEC_LANDING_DIR``, else the local default."""
        return self.landing_url or str(self.landing_dir)

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def landing_dir(self) -> Path:
        """The local default landing directory (the demo's sample corpus goes there)."""
        return self.home / "landing"

    @property
    def dagster_artifacts_dir(self) -> Path:
        return self.home / "dagster"

    @property
    def uses_embedded_server(self) -> bool:
        return not self.database_url


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def load_settings(
    home: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    pgbouncer: bool | None = None,
) -> Settings:
    """Explicit arguments win; otherwise the environment; otherwise the defaults."""
    home_path = Path(home or os.environ.get("DOCVEC_HOME") or Path.cwd() / DEFAULT_HOME_DIRNAME)
    return Settings(
        home=home_path.expanduser().resolve(),
        database_url=database_url or os.environ.get("DATABASE_URL") or None,
        dagster_database_url=os.environ.get("DAGSTER_DATABASE_URL") or None,
        pgbouncer=_truthy(os.environ.get("DOCVEC_PGBOUNCER")) if pgbouncer is None else pgbouncer,
        search_database_url=os.environ.get("DOCVEC_SEARCH_DATABASE_URL") or None,
        landing_url=os.environ.get("DOCVEC_LANDING_DIR") or None,
        source_mode=(os.environ.get("DOCVEC_SOURCE_MODE") or "days").strip().lower(),
        pushgateway_url=os.environ.get("DOCVEC_PUSHGATEWAY_URL", "").strip() or None,
        metrics_textfile_dir=Path(folder) if (folder := os.environ.get("DOCVEC_METRICS_TEXTFILE_DIR", "").strip()) else None,
        reranker=Path(model) if (model := os.environ.get("DOCVEC_RERANKER", "").strip()) else None,
        rerank_candidates=os.environ.get("DOCVEC_RERANK_CANDIDATES", "").strip() or None,
        vector_storage=os.environ.get("DOCVEC_VECTOR_STORAGE", "").strip() or None,
    )
