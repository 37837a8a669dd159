"""The one bulk-load path: binary ``COPY ... FROM STDIN`` through psycopg 3.

Types are declared up front (``copy.set_types``) so psycopg's C dumpers write each field straight into
the binary stream; vectors use pgvector's registered binary dumper. Nothing here issues INSERTs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class CopyStats:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def copy_rows(cursor: psycopg.Cursor[Any], table: str | sql.Composable, columns: Sequence[str],
              types: Sequence[str], rows: Iterable[Sequence[Any]], *, freeze: bool = False) -> CopyStats:
    """Stream ``rows`` into ``table`` with binary COPY; returns rows and seconds.

    ``freeze`` (only for a table created or truncated in the current transaction) writes the rows
    already frozen, sparing the later hint-bit rewrite and anti-wraparound vacuum of a bulk load."""
    target = sql.Identifier(table) if isinstance(table, str) else table
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY{})").format(
        target, sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.SQL(", FREEZE" if freeze else "")
    )
    started = time.perf_counter()
    count = 0
    with cursor.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
            count += 1
    return CopyStats(rows=count, seconds=time.perf_counter() - started)
