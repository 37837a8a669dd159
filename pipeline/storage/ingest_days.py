"""The ``ingest_days`` table: per day and model, what the stored chunks were built from (fingerprint,
file signature, content fingerprint) and how many there are. Reading it back tells whether a rerun can
skip a day, and which days a model's vectors cover."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.records import DayEmbeddings, SourceState
from pipeline.storage import catalog


def record_load(conn: psycopg.Connection[Any], batch: DayEmbeddings, model_id: int, *, documents: int,
                chunks: int) -> None:
    """Record a day just loaded (inside the load's transaction)."""
    conn.execute(
        """
        INSERT INTO ingest_days (ingest_date, fingerprint, model_id, documents, chunks, embedded, reused,
                                 dead_letters, source_signature, content_fingerprint)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (ingest_date, model_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
            documents = EXCLUDED.documents, chunks = EXCLUDED.chunks, embedded = EXCLUDED.embedded,
            reused = EXCLUDED.reused, dead_letters = EXCLUDED.dead_letters,
            source_signature = EXCLUDED.source_signature, content_fingerprint = EXCLUDED.content_fingerprint,
            loaded_at = now()
        """,
        (batch.day, batch.fingerprint, model_id, documents, chunks, batch.embedded, batch.reused,
         len(batch.dead_letters), batch.source.signature or None, batch.source.content_fingerprint or None),
    )


def record_signature(conn: psycopg.Connection[Any], day: dt.date, model_id: int, source: SourceState) -> None:
    """A new file signature for unchanged contents (files touched or copied), so the next scan need not
    read them."""
    conn.execute(
        "UPDATE ingest_days SET source_signature = %s, content_fingerprint = %s WHERE ingest_date = %s "
        "AND model_id = %s AND source_signature IS DISTINCT FROM %s",
        (source.signature, source.content_fingerprint, day, model_id, source.signature),
    )


@dataclass(frozen=True)
class RecordedFingerprints:
    """What a model's stored load of a day was built from: the day's ``fingerprint`` (contents and
    recipe) and its ``content_fingerprint`` (contents alone)."""
    fingerprint: str
    content_fingerprint: str


def recorded_fingerprints(conn: psycopg.Connection[Any], day: dt.date, model_id: int) -> RecordedFingerprints | None:
    """The fingerprints this model's load of the day recorded, if its partition is there and both were."""
    row = conn.execute("SELECT fingerprint, content_fingerprint FROM ingest_days WHERE ingest_date = %s AND model_id = %s "
                       f"AND content_fingerprint IS NOT NULL AND {catalog.partition_exists_sql('ingest_date')}",
                       (day, model_id)).fetchone()
    return RecordedFingerprints(str(row[0]), str(row[1])) if row else None


def counts(conn: psycopg.Connection[Any], day: dt.date, model_id: int) -> tuple[int, int, int] | None:
    """(documents, chunks, dead letters) recorded for the day's load by this model."""
    row = conn.execute("SELECT documents, chunks, dead_letters FROM ingest_days WHERE ingest_date = %s AND model_id = %s",
                       (day, model_id)).fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def has_fingerprint(conn: psycopg.Connection[Any], day: dt.date, fingerprint: str) -> bool:
    """Whether the stored day was built from exactly this input (the fingerprint names the model too),
    and its partition is there to prove it."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ingest_days WHERE ingest_date = %s AND fingerprint = %s) "
        f"AND {catalog.partition_exists_sql('%s::date')}",
        (day, fingerprint, day),
    ).fetchone()
    return bool(row and row[0])


def stored_source(conn: psycopg.Connection[Any], day: dt.date) -> SourceState | None:
    """What the stored day was built from, if its partition is there and both parts were recorded."""
    row = conn.execute(
        "SELECT source_signature, content_fingerprint FROM ingest_days "
        f"WHERE ingest_date = %s AND {catalog.partition_exists_sql('ingest_date')} "
        "AND source_signature IS NOT NULL AND content_fingerprint IS NOT NULL ORDER BY loaded_at DESC LIMIT 1",
        (day,),
    ).fetchone()
    return SourceState(signature=row[0], content_fingerprint=row[1]) if row else None


def stored_days(conn: psycopg.Connection[Any]) -> list[dt.date]:
    """Every day with a loaded partition, whichever model loaded it."""
    return [r[0] for r in conn.execute(
        f"SELECT DISTINCT ingest_date FROM ingest_days WHERE {catalog.partition_exists_sql('ingest_date')} ORDER BY 1")]


def covered_days(conn: psycopg.Connection[Any], model_id: int) -> dict[dt.date, bool]:
    """Each stored day, and whether the model's load of it was made from the same files as the day's
    latest load by any model."""
    rows = conn.execute(
        f"""
        WITH latest AS (
            SELECT DISTINCT ON (ingest_date) ingest_date, content_fingerprint
            FROM ingest_days ORDER BY ingest_date, loaded_at DESC
        )
        SELECT l.ingest_date, m.ingest_date IS NOT NULL
               AND m.content_fingerprint IS NOT DISTINCT FROM l.content_fingerprint
        FROM latest l LEFT JOIN ingest_days m ON m.ingest_date = l.ingest_date AND m.model_id = %s
        WHERE {catalog.partition_exists_sql('l.ingest_date')}
        ORDER BY l.ingest_date
        """,
        (model_id,),
    ).fetchall()
    return {day: bool(current) for day, current in rows}


def forget_before(conn: psycopg.Connection[Any], horizon: dt.date, keep: Sequence[dt.date]) -> None:
    """Delete the records of days before ``horizon`` except the ``keep`` days."""
    conn.execute("DELETE FROM ingest_days WHERE ingest_date < %s AND NOT (ingest_date = ANY(%s))",
                 (horizon, list(keep)))


def last_load(conn: psycopg.Connection[Any]) -> dt.datetime | None:
    """When any day was last loaded (by any model)."""
    row = conn.execute("SELECT max(loaded_at) FROM ingest_days").fetchone()
    return row[0] if row else None


def latest_day(conn: psycopg.Connection[Any]) -> dt.date | None:
    """The latest day loaded, whichever model loaded it (None when nothing is stored)."""
    found = conn.execute("SELECT max(ingest_date) FROM ingest_days").fetchone()
    return found[0] if found else None


def forget_empty_before(conn: psycopg.Connection[Any], horizon: dt.date) -> int:
    """Delete the records of days before ``horizon`` that hold no document any more (a collection's
    old days whose versions were all purged); days still holding live versions keep theirs."""
    return conn.execute(
        "DELETE FROM ingest_days i WHERE i.ingest_date < %s "
        "AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.ingest_date = i.ingest_date)", (horizon,)).rowcount
