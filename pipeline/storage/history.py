"""History: versions of documents that are no longer live (superseded by a later version, or deleted
by a tombstone), and the ``history_purges`` table that records how far back it is kept. Search as of
a day (``as_of``) reads history; retention purges it (see ``purge``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from pipeline.storage.queries import value


def horizon(conn: psycopg.Connection[Any]) -> dt.date | None:
    """The oldest day whose state the store still holds in full: retention purged history from before
    it (None while nothing was ever purged)."""
    found = value(conn, "SELECT max(horizon) FROM history_purges")
    return found if isinstance(found, dt.date) else None
