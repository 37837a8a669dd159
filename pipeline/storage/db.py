"""The one connection factory: URLs for each client (docvec, Dagster, Alembic), psycopg connections,
and which database errors a retry can get past. With no ``DATABASE_URL`` the embedded server
(``embedded_server.py``) is started on first use."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from sqlalchemy.engine import make_url

from pipeline.errors import DatabaseSetupError, DatabaseUnavailableError
from pipeline.settings import DAGSTER_DATABASE, DOCVEC_DATABASE, Settings
from pipeline.storage.embedded_server import start_embedded_server

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 7, 0)


def with_database(url: str, database: str, driver: str = "postgresql") -> str:
    return make_url(url).set(drivername=driver, database=database).render_as_string(hide_password=False)


def server_url(settings: Settings) -> str:
    """libpq URI of the server docvec uses (its maintenance database for the embedded one)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded_server(settings.pgdata)


def docvec_url(settings: Settings, driver: str = "postgresql") -> str:
    """URI of the database holding docvec's tables."""
    if settings.database_url:
        url = make_url(settings.database_url)
        return url.set(drivername=driver).render_as_string(hide_password=False)
    return with_database(server_url(settings), DOCVEC_DATABASE, driver)


def dagster_storage_url(settings: Settings) -> str:
    """URL for dagster-postgres. It must name psycopg2: with SQLAlchemy 2.1 a bare ``postgresql://``
    means psycopg 3, and dagster-postgres's event log then fails on ``NOTIFY run_events, $1``."""
    if settings.dagster_database_url:
        url = make_url(settings.dagster_database_url)
        return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return with_database(server_url(settings), DAGSTER_DATABASE, "postgresql+psycopg2")


def redact(url: str) -> str:
    """The URL with any password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - whatever fails to parse, the URL is never echoed with its secret
        return "<unparsable database URL>"


def connect_kwargs(settings: Settings) -> dict[str, object]:
    # PgBouncer in transaction mode cannot keep server-side prepared statements across transactions.
    return {"prepare_threshold": None} if settings.pgbouncer else {}


@contextmanager
def server_connection(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the server's maintenance database (to create or drop databases);
    a server that cannot be reached is a ``DatabaseSetupError`` naming it, without its password."""
    base = server_url(settings)
    try:
        conn = psycopg.connect(base, autocommit=True, **connect_kwargs(settings))  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise DatabaseSetupError(f"cannot reach PostgreSQL at {redact(base)}: {exc}") from exc
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


# Server states a retry can get past: the server shut down or restarted under us, is still starting, or
# chose this transaction as the loser of a serialization conflict or deadlock. Everything else (a full
# disk, a cancelled statement, a missing privilege) fails the same way again.
_RETRYABLE_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
})


def is_transient(exc: BaseException | None) -> bool:
    """Whether retrying the work may succeed: the connection was lost or refused (libpq reports those
    without a SQLSTATE, or in class 08), or the server said so by its SQLSTATE (see above)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in _RETRYABLE_SQLSTATES


def one(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] | dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The single row ``query`` must return (aggregates, catalog facts that always exist)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise DatabaseSetupError(f"expected one row, got none from: {str(query)[:120]}")
    return tuple(row)


def value(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    """The first column of the single row ``query`` must return."""
    return one(conn, query, params)[0]


@contextmanager
def connection_guard(doing: str) -> Iterator[None]:
    """A lost connection while ``doing`` something becomes one clear sentence instead of a driver
    traceback; the original stays chained for ``--verbose`` logs. Other errors pass unchanged."""
    try:
        yield
    except psycopg.OperationalError as exc:
        if not is_transient(exc):
            raise
        reason = (str(exc).strip().splitlines() or ["connection lost"])[0]
        raise DatabaseUnavailableError(
            f"lost the database connection while {doing} ({reason}). The server may be restarting or "
            "unreachable: retry in a moment; `docvec doctor` checks it."
        ) from exc


def require_create_privilege(conn: psycopg.Connection, schema: str = "public") -> None:
    """Migrations create tables and partitions: say which GRANT is missing instead of failing mid-way."""
    user, database, allowed = one(
        conn, "SELECT current_user, current_database(), has_schema_privilege(%s, 'CREATE')", (schema,))
    if not allowed:
        raise DatabaseSetupError(
            f"user {user} may not create tables in schema {schema} of database {database}. Run the migration "
            f"as the database owner, or have one run `GRANT CREATE ON SCHEMA {schema} TO {user};`."
        )


@contextmanager
def connect(settings: Settings, *, autocommit: bool = True, for_search: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection to docvec's database with pgvector's types registered; always closed.

    Autocommit by default: each statement stands alone, and work that must be atomic says so with
    ``with conn.transaction():`` (which is then a real BEGIN/COMMIT, never a savepoint inside a
    transaction someone forgot to close). ``for_search``: the read-only search path, sent to
    ``DOCVEC_SEARCH_DATABASE_URL`` (a read replica) when one is set."""
    url = settings.search_database_url if for_search and settings.search_database_url else docvec_url(settings)
    try:
        conn = psycopg.connect(url, autocommit=autocommit, **connect_kwargs(settings))  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise DatabaseSetupError(f"cannot connect to {redact(url)}: {exc}") from exc
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
