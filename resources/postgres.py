from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource
from pydantic import Field

from pipeline import db, migrate
from pipeline.settings import Settings, load_settings


class PostgresResource(ConfigurableResource):
    """docvec's PostgreSQL + pgvector. Leave ``database_url`` empty to use ``$DATABASE_URL`` when set,
    else the embedded server under ``home`` (default ``$DOCVEC_HOME`` or ``./.docvec``)."""

    database_url: str | None = Field(default=None, description="postgresql://… URL; empty = $DATABASE_URL or embedded")
    home: str | None = Field(default=None, description="docvec data dir; empty = $DOCVEC_HOME or ./.docvec")
    pgbouncer: bool | None = Field(
        default=None, description="True when database_url points at PgBouncer in transaction mode (no prepared statements)"
    )

    def settings(self) -> Settings:
        return load_settings(home=self.home, database_url=self.database_url, pgbouncer=self.pgbouncer)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with db.connect(self.settings()) as conn:
            migrate.require_current_schema(conn)
            yield conn
