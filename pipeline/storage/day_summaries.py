"""What each stored day holds, as the served model sees it: documents, chunks, embedding work and open
dead letters. The one place that reads those tables together (``docvec status``, the load report)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.storage import model_registry


@dataclass(frozen=True)
class DaySummary:
    day: dt.date
    documents: int
    chunks: int
    embedded: int
    reused: int
    loaded_at: dt.datetime | None
    open_dead_letters: int
    deleted: int = 0  # tombstones of the day: documents deleted as of it (pipeline/storage/tombstones.py)


def day_summaries(conn: psycopg.Connection[Any], days: list[dt.date] | None = None) -> list[DaySummary]:
    """Every day something is stored or failed for; all days, or only ``days``."""
    rows = conn.execute(
        """
        SELECT d.ingest_date,
               (SELECT count(*) FROM documents x WHERE x.ingest_date = d.ingest_date),
               (SELECT count(*) FROM chunks c WHERE c.ingest_date = d.ingest_date
                                              AND c.model_id = %(model_id)s),
               coalesce(i.embedded, 0), coalesce(i.reused, 0), i.loaded_at,
               (SELECT count(*) FROM dead_letters l WHERE l.ingest_date = d.ingest_date AND l.resolved_at IS NULL),
               (SELECT count(*) FROM document_deletions t WHERE t.ingest_date = d.ingest_date)
        FROM (SELECT ingest_date FROM ingest_days
              UNION SELECT DISTINCT ingest_date FROM documents
              UNION SELECT DISTINCT ingest_date FROM document_deletions
              UNION SELECT ingest_date FROM dead_letters WHERE resolved_at IS NULL) d
        LEFT JOIN ingest_days i ON i.ingest_date = d.ingest_date AND i.model_id = %(model_id)s
        WHERE %(days)s::date[] IS NULL OR d.ingest_date = ANY(%(days)s::date[])
        ORDER BY d.ingest_date
        """,
        # The served model's view of each day (a shadow model's rows may sit beside it).
        {"days": days, "model_id": serving.id if (serving := model_registry.serving(conn)) else None},
    ).fetchall()
    return [DaySummary(day, int(documents), int(chunks), int(embedded), int(reused), loaded_at, int(dead), int(deleted))
            for day, documents, chunks, embedded, reused, loaded_at, dead, deleted in rows]
