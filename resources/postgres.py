from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource, RetryRequested
from pydantic import Field

from pipeline.errors import DatabaseSetupError, DatabaseUnavailableError
from pipeline.settings import Settings, load_settings
from pipeline.storage import db, migrate


class PostgresResource(ConfigurableResource):
    """docvec's PostgreSQL + pgvector. Leave ``database_url`` empty to use ``$DATABASE_URL`` when set,
    else the embedded server under ``home`` (default ``$DOCVEC_HOME`` or ``./.docvec``)."""

    database_url: str | None = Field(default=None, description="postgresql://… URL; empty = $DATABASE_URL or embedded")
    home: str | None = Field(default=None, description="docvec data dir; empty = $DOCVEC_HOME or ./.docvec")
    pgbouncer: bool | None = Field(
        default=None, description="True when database_url points at PgBouncer in transaction mode (no prepared statements)"
    )
    retries: int = Field(default=3, ge=0, description="step retries after a lost or refused connection")
    retry_wait_seconds: float = Field(default=10.0, ge=0, description="wait before each such retry")

    def settings(self) -> Settings:
        return load_settings(home=self.home, database_url=self.database_url, pgbouncer=self.pgbouncer)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A checked connection. A lost or refused connection (server restart, failover, network) asks
        Dagster to retry the step a few times instead of failing the run."""
        retry = RetryRequested(max_retries=self.retries, seconds_to_wait=self.retry_wait_seconds)
        try:
            with db.connect(self.settings()) as conn:
                migrate.require_current_schema(conn)
                yield conn
        except (psycopg.OperationalError, DatabaseUnavailableError) as exc:
            raise retry from exc
        except DatabaseSetupError as exc:
            if isinstance(exc.__cause__, psycopg.OperationalError):
                raise retry from exc
            raise
