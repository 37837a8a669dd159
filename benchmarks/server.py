"""The server every benchmark runs against: docvec's configured one (``DATABASE_URL``, or the embedded
server under ``$DOCVEC_HOME``, started here when it is not running), with a scratch database per
benchmark so that nothing touches the data docvec serves."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import DocvecError
from pipeline.settings import Settings, load_settings
from pipeline.storage import admin, connections, migrate, urls

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2, the bundled model


def scratch_settings(name: str, dim: int = EMBEDDING_DIM) -> Settings:
    """A fresh database ``name`` on the configured server, migrated, and settings pointing at it (for
    docvec's tables and Dagster's alike)."""
    return migrate.migrated_scratch_database(load_settings(), dim, name)


def existing_scratch(name: str) -> Settings | None:
    """Settings for scratch database ``name`` left by an earlier run (``--reuse``), if it exists."""
    base = load_settings()
    url = urls.with_database(urls.server_url(base), name)
    settings = Settings(home=base.home, database_url=url, dagster_database_url=url, pgbouncer=base.pgbouncer)
    try:
        with connections.connect(settings):
            return settings
    except DocvecError:  # no such database
        return None


def copy_scratch(source: str, target: str) -> None:
    """Scratch database ``target`` as a copy of ``source`` (no session may be using it)."""
    admin.copy_database(load_settings(), source, target)


def drop_scratch(name: str) -> None:
    admin.drop_database(load_settings(), name)


def benchmark_main(main: Callable[[], None]) -> Callable[[], None]:
    """Run a benchmark's ``main``; a server that cannot be started or reached ends it with one line
    saying what to do, instead of a traceback."""
    @functools.wraps(main)
    def run() -> None:
        try:
            main()
        except DocvecError as exc:
            program = Path(sys.argv[0]).stem
            sys.exit(f"{program}: {exc}\n(benchmarks use docvec's server: `docvec up` starts the embedded one; "
                     "DATABASE_URL points them at another)")
    return run
