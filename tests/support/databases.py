"""Databases of a test's own on the session's server, and waiting for the server to act on a request."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import psycopg

from pipeline.settings import Settings
from pipeline.storage import migrate


def fresh_database(base: Settings, dim: int, name: str) -> Settings:
    """A new, migrated database on the session's server, for tests that need the tables to themselves."""
    return migrate.migrated_scratch_database(base, dim, name)


def own_home(store: Settings, home: Path) -> Settings:
    """``store``'s database (docvec's tables and Dagster's) with a data dir of its own: its landing
    folder, Dagster's artifacts and the day batches stay apart from the session's."""
    return dataclasses.replace(store, home=home)


def wait_until_backend_exits(admin: psycopg.Connection[Any], pid: int, seconds: float = 10.0) -> None:
    """Return once the server has no session ``pid`` (``pg_terminate_backend`` only signals it: the backend
    exits a moment later); fail after ``seconds``. ``admin`` must be in autocommit: inside one transaction
    ``pg_stat_activity`` is a snapshot that would never change."""
    if not admin.autocommit:
        raise ValueError("wait_until_backend_exits needs an autocommit connection")
    deadline = time.monotonic() + seconds
    while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"backend {pid} was still running {seconds:.0f} s after pg_terminate_backend")
        time.sleep(0.02)
