"""docvec's errors are typed, and callers decide by type: a refused or lost connection is the only
thing retried as unavailable; stored-state and precondition failures are not retried; no caller needs
the message text to tell them apart."""

from __future__ import annotations

import socket

import psycopg
import pytest
from dagster import RetryRequested

from pipeline.errors import (
    ConfigError,
    ContentionError,
    DatabaseSetupError,
    DatabaseUnavailableError,
    DimensionMismatchError,
    PreconditionError,
    StoredStateError,
    TransientError,
)
from pipeline.settings import Settings, load_settings
from pipeline.storage import admin, connections, queries, sqlstate
from resources import PostgresResource


def _refusing_url() -> str:
    """A loopback port nothing listens on (bound, then released), with a password that must not leak."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://docvec:s3cret-pw@127.0.0.1:{port}/docvec?connect_timeout=2"


def test_the_types_say_what_a_caller_may_do() -> None:
    assert issubclass(DatabaseUnavailableError, TransientError) and issubclass(ContentionError, TransientError)
    assert issubclass(DatabaseSetupError, PreconditionError) and issubclass(DimensionMismatchError, PreconditionError)
    for settled in (ConfigError, PreconditionError, StoredStateError, DatabaseSetupError):
        assert not issubclass(settled, TransientError)
        assert not sqlstate.is_transient(settled("x"))
    assert sqlstate.is_transient(DatabaseUnavailableError("x")) and sqlstate.is_transient(ContentionError("x"))


def test_a_refused_connection_is_unavailable_and_names_the_server_without_its_password(tmp_path) -> None:
    settings = load_settings(home=tmp_path, database_url=_refusing_url())
    with pytest.raises(DatabaseUnavailableError) as raised, connections.connect(settings):
        pass
    assert "127.0.0.1" in str(raised.value) and "s3cret-pw" not in str(raised.value)
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)
    with pytest.raises(DatabaseUnavailableError), admin.server_connection(settings):
        pass


def test_a_step_retries_a_refused_connection(tmp_path) -> None:
    resource = PostgresResource(home=str(tmp_path), database_url=_refusing_url(), retries=2, retry_wait_seconds=0)
    with pytest.raises(RetryRequested) as raised, resource.connect():
        pass
    assert isinstance(raised.value.__cause__, DatabaseUnavailableError)


@pytest.mark.database
def test_a_missing_row_is_stored_state_and_is_not_retried(migrated: Settings) -> None:
    resource = PostgresResource(home=str(migrated.home), retries=2, retry_wait_seconds=0)
    with pytest.raises(StoredStateError, match="expected one row"), resource.connect() as conn:
        queries.one(conn, "SELECT 1 WHERE false")


@pytest.mark.database
def test_an_unmigrated_database_is_a_precondition_and_is_not_retried(migrated: Settings) -> None:
    url = admin.recreate_database(migrated, "docvec_unmigrated_probe")
    try:
        resource = PostgresResource(home=str(migrated.home), database_url=url, retries=2, retry_wait_seconds=0)
        with pytest.raises(PreconditionError, match="run `docvec migrate`"), resource.connect():
            pass
    finally:
        admin.drop_database(migrated, "docvec_unmigrated_probe")
