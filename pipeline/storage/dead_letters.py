"""The ``dead_letters`` table: files (or documents of them) that could not be ingested, with what went
wrong and the fix, kept open until the file loads or leaves its day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline.records import DeadLetter


def record(conn: psycopg.Connection[Any], day: dt.date, letters: Sequence[DeadLetter]) -> None:
    """Upsert this day's dead letters (attempts counted); mark resolved the ones whose file now loads
    or is gone from the day."""
    with conn.cursor() as cursor:
        if letters:
            cursor.executemany(
                """
                INSERT INTO dead_letters (source_uri, ingest_date, stage, error, detail)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (source_uri, ingest_date, stage) DO UPDATE
                SET error = EXCLUDED.error, detail = EXCLUDED.detail, last_seen = now(),
                    attempts = dead_letters.attempts + 1, resolved_at = NULL
                """,
                [(d.source_uri, d.ingest_date, d.stage, d.error, d.detail) for d in letters],
            )
        # Every open letter of the day that did not fail again was fixed or removed: resolved.
        cursor.execute(
            """
            UPDATE dead_letters SET resolved_at = now()
            WHERE ingest_date = %s AND resolved_at IS NULL AND NOT (source_uri = ANY(%s))
            """,
            (day, [d.source_uri for d in letters]),
        )


def open_letters(conn: psycopg.Connection[Any], days: Sequence[dt.date] | None = None) -> list[dict[str, Any]]:
    query = "SELECT source_uri, ingest_date, stage, error, detail, attempts FROM dead_letters WHERE resolved_at IS NULL"
    params: tuple[Any, ...] = ()
    if days is not None:
        query += " AND ingest_date = ANY(%s)"
        params = (list(days),)
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query + " ORDER BY ingest_date, source_uri", params).fetchall()


def delete_resolved_before(conn: psycopg.Connection[Any], horizon: dt.date, *, dry_run: bool = False) -> int:
    """Resolved dead letters of days before ``horizon`` (open ones stay: someone still has to look at
    them); counted only when ``dry_run``."""
    if dry_run:
        row = conn.execute("SELECT count(*) FROM dead_letters WHERE ingest_date < %s AND resolved_at IS NOT NULL",
                           (horizon,)).fetchone()
        return int(row[0]) if row else 0
    return conn.execute("DELETE FROM dead_letters WHERE ingest_date < %s AND resolved_at IS NOT NULL",
                        (horizon,)).rowcount
