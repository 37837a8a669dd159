"""Small helpers for statements that must return exactly one row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pipeline.errors import StoredStateError


def one(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] | dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The single row ``query`` must return (aggregates, catalog facts that always exist)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise StoredStateError(f"expected one row, got none from: {str(query)[:120]}")
    return tuple(row)


def value(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    """The first column of the single row ``query`` must return."""
    return one(conn, query, params)[0]
