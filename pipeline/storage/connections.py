"""The one connection factory: psycopg 3 connections to docvec's database, and the pool of search
connections ``docvec serve`` holds. A server that cannot be reached is ``DatabaseUnavailableError``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from pgvector.psycopg import register_vector

from pipeline.errors import DatabaseSetupError, DatabaseUnavailableError
from pipeline.settings import Settings
from pipeline.storage.sqlstate import is_transient
from pipeline.storage.urls import docvec_url, redact

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool


def connect_kwargs(settings: Settings) -> dict[str, object]:
    # PgBouncer in transaction mode cannot keep server-side prepared statements across transactions.
    return {"prepare_threshold": None} if settings.pgbouncer else {}


@contextmanager
def connect(settings: Settings, *, autocommit: bool = True, for_search: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection to docvec's database with pgvector's types registered; always closed.

    Autocommit by default: each statement stands alone, and work that must be atomic says so with
    ``with conn.transaction():`` (which is then a real BEGIN/COMMIT, never a savepoint inside a
    transaction someone forgot to close). ``for_search``: the read-only search path, sent to
    ``DOCVEC_SEARCH_DATABASE_URL`` (a read replica) when one is set. A refused or unreachable server
    is ``DatabaseUnavailableError``; a login the server rejects (wrong password, no such database) is
    ``DatabaseSetupError``: retrying would not help."""
    url = settings.search_database_url if for_search and settings.search_database_url else docvec_url(settings)
    try:
        conn = psycopg.connect(url, autocommit=autocommit, **connect_kwargs(settings))  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        kind = DatabaseUnavailableError if is_transient(exc) else DatabaseSetupError
        raise kind(f"cannot connect to {redact(url)}: {exc}") from exc
    try:
        try:
            register_vector(conn)
        except psycopg.ProgrammingError as exc:
            raise DatabaseSetupError(
                f"pgvector is not installed in {redact(url)}: run `docvec migrate` (it creates the extension)."
            ) from exc
        if not autocommit:
            conn.commit()  # register_vector's catalog read must not hold a transaction open
        yield conn
    finally:
        conn.close()


def search_pool(settings: Settings, *, min_size: int = 1, max_size: int = 8, timeout: float = 5.0) -> ConnectionPool:
    """A pool of search connections for a long-running reader (``docvec serve``): the search URL
    (``DOCVEC_SEARCH_DATABASE_URL``, a replica or the reader role) when set, pgvector's types registered,
    every transaction read-only (except through PgBouncer, where session settings do not stick: give
    the pool a reader role there). Each connection is checked before it is handed out, so a restarted
    or failed-over server is reconnected to; while none can be had, ``getconn`` raises ``PoolTimeout``
    after ``timeout`` seconds. Opened by the caller (``pool.open()``) and closed by it."""
    from psycopg_pool import ConnectionPool

    url = settings.search_database_url or docvec_url(settings)

    def configure(conn: psycopg.Connection[Any]) -> None:
        register_vector(conn)
        if not settings.pgbouncer:
            conn.execute("SET default_transaction_read_only = on")

    return ConnectionPool(url, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
                          kwargs={"autocommit": True, **connect_kwargs(settings)}, configure=configure,
                          check=ConnectionPool.check_connection, name="docvec-search")
