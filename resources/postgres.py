from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from dagster import ConfigurableResource, Failure, RetryRequested
from pydantic import Field

from pipeline.errors import TransientError
from pipeline.settings import Settings, load_settings
from pipeline.storage import connections, migrate, sqlstate


class PostgresResource(ConfigurableResource):
    """docvec's PostgreSQL + pgvector. Leave ``database_url`` empty to use ``$DATABASE_URL`` when set,
    else the embedded server under ``home`` (default ``$DOCVEC_HOME`` or ``./.docvec``)."""

    database_url: str | None = Field(default=None, description="postgresql://… URL; empty = $DATABASE_URL or embedded")
    home: str | None = Field(default=None, description="docvec data dir; empty = $DOCVEC_HOME or ./.docvec")
    pgbouncer: bool | None = Field(
        default=None, description="True when database_url points at PgBouncer in transaction mode (no prepared statements)"
    )
    retries: int = Field(default=3, ge=0, description="step retries after a lost connection, a server restart, "
                         "a serialization failure or a deadlock")
    retry_wait_seconds: float = Field(default=10.0, ge=0, description="wait before each such retry")

    def settings(self) -> Settings:
        return load_settings(home=self.home, database_url=self.database_url, pgbouncer=self.pgbouncer)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection. What a retry can get past (connection lost or refused, the server
        shutting down or restarting, a serialization failure or deadlock, another run holding the
        partition) asks Dagster to retry the step a few times; any other database error (a full disk,
        a cancelled statement, a missing privilege) fails the step at once with the server's message."""
        try:
            with connections.connect(self.settings()) as conn:
                migrate.require_current_schema(conn)
                yield conn
        except TransientError as exc:  # connection refused or lost, another run holding the partition
            raise self._retry() from exc
        except psycopg.Error as exc:
            if sqlstate.is_transient(exc):
                raise self._retry() from exc
            message = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
            raise Failure(description=f"PostgreSQL refused the work ({exc.sqlstate or 'no SQLSTATE'} "
                                      f"{type(exc).__name__}): {message}. A retry would fail the same way.",
                          allow_retries=False) from exc

    def _retry(self) -> RetryRequested:
        return RetryRequested(max_retries=self.retries, seconds_to_wait=self.retry_wait_seconds)
