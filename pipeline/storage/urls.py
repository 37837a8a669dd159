"""Where each client finds the server: URLs for docvec's own code (psycopg 3), Dagster's storage
(psycopg2) and Alembic, and their redaction for logs and messages. With no ``DATABASE_URL`` the
embedded server (``embedded_server.py``) is started on first use."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from pipeline.settings import DAGSTER_DATABASE, DOCVEC_DATABASE, Settings
from pipeline.storage.embedded_server import start_embedded_server


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
