"""Server administration docvec does for itself: its databases, the pgvector extension and the
privileges migrations need. Each refusal names the server (never its password) and the fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from pipeline.errors import DatabaseSetupError, DatabaseUnavailableError
from pipeline.settings import DAGSTER_DATABASE, DOCVEC_DATABASE, Settings
from pipeline.storage.connections import connect_kwargs
from pipeline.storage.queries import one, value
from pipeline.storage.sqlstate import is_transient
from pipeline.storage.urls import redact, server_url, with_database

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 7, 0)


@contextmanager
def server_connection(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the server's maintenance database (to create or drop databases).
    A server that cannot be reached is ``DatabaseUnavailableError``, one that refuses the login a
    ``DatabaseSetupError``; both name the server without its password."""
    base = server_url(settings)
    try:
        conn = psycopg.connect(base, autocommit=True, **connect_kwargs(settings))  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        kind = DatabaseUnavailableError if is_transient(exc) else DatabaseSetupError
        raise kind(f"cannot reach PostgreSQL at {redact(base)}: {exc}") from exc
    with conn:
        yield conn


def ensure_databases(settings: Settings) -> None:
    """Create the ``docvec`` and ``dagster`` databases where we own the server and they are missing."""
    wanted: list[str] = []
    if settings.uses_embedded_server:
        wanted.append(DOCVEC_DATABASE)
    if not settings.dagster_database_url:
        wanted.append(DAGSTER_DATABASE)
    if not wanted:
        return
    with server_connection(settings) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in wanted:
            if name in existing:
                continue
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise DatabaseSetupError(
                    f"cannot create database {name} on {redact(server_url(settings))}: {exc}. Create it as a "
                    "superuser, or set DAGSTER_DATABASE_URL to an existing database for Dagster."
                ) from exc
            log.info("created database %s", name)


def recreate_database(settings: Settings, name: str) -> str:
    """Drop (forcibly) and create database ``name`` on the configured server; return its URL.
    For tests and benchmarks that need tables of their own."""
    with server_connection(settings) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url(settings), name)


def copy_database(settings: Settings, source: str, target: str) -> str:
    """Database ``target`` as a copy of ``source`` (which no session may be using), replacing any
    ``target``; return its URL. For benchmarks that start two stores from the same state."""
    with server_connection(settings) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target), sql.Identifier(source)))
    return with_database(server_url(settings), target)


def drop_database(settings: Settings, name: str) -> None:
    with server_connection(settings) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ensure_vector_extension(conn: psycopg.Connection) -> str:
    """Create pgvector if missing; refuse versions we cannot use. Returns the installed version."""
    available = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if available is None:
        raise DatabaseSetupError(
            "the pgvector extension is not available on this PostgreSQL server. Install it on the server "
            "(e.g. `apt install postgresql-NN-pgvector`, see https://github.com/pgvector/pgvector#installation) "
            "or unset DATABASE_URL to use docvec's embedded server, which ships pgvector."
        )
    if available[1] is None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DatabaseSetupError(
                "pgvector is available but not installed in this database and this user may not install it: "
                "ask a superuser to run `CREATE EXTENSION vector;` in it."
            ) from exc
    version = str(value(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    if tuple(int(part) for part in version.split(".")[:3]) < MIN_PGVECTOR:
        raise DatabaseSetupError(
            f"pgvector {version} is too old: docvec needs >= {'.'.join(map(str, MIN_PGVECTOR))} "
            "(run `ALTER EXTENSION vector UPDATE;` after upgrading the server package)."
        )
    return version


def require_create_privilege(conn: psycopg.Connection, schema: str = "public") -> None:
    """Migrations create tables and partitions: say which GRANT is missing instead of failing mid-way."""
    user, database, allowed = one(
        conn, "SELECT current_user, current_database(), has_schema_privilege(%s, 'CREATE')", (schema,))
    if not allowed:
        raise DatabaseSetupError(
            f"user {user} may not create tables in schema {schema} of database {database}. Run the migration "
            f"as the database owner, or have one run `GRANT CREATE ON SCHEMA {schema} TO {user};`."
        )
