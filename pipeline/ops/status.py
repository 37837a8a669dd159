"""Per-day state of the store, for `docvec status` (and anything else that reports it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from pipeline.storage import catalog, layout, model_registry, retention


@dataclass(frozen=True)
class DayStatus:
    day: dt.date
    documents: int
    chunks: int
    embedded: int
    reused: int
    open_dead_letters: int
    index: str
    loaded_at: dt.datetime | None


def day_statuses(conn: psycopg.Connection, days: list[dt.date] | None = None) -> list[DayStatus]:
    """Per-day state; all days, or only ``days``."""
    rows = conn.execute(
        """
        SELECT d.ingest_date,
               (SELECT count(*) FROM documents x WHERE x.ingest_date = d.ingest_date),
               (SELECT count(*) FROM chunks c WHERE c.ingest_date = d.ingest_date
                                              AND c.model_id = %(model_id)s),
               coalesce(i.embedded, 0), coalesce(i.reused, 0), i.loaded_at,
               (SELECT count(*) FROM dead_letters l WHERE l.ingest_date = d.ingest_date AND l.resolved_at IS NULL)
        FROM (SELECT ingest_date FROM ingest_days
              UNION SELECT DISTINCT ingest_date FROM documents
              UNION SELECT ingest_date FROM dead_letters WHERE resolved_at IS NULL) d
        LEFT JOIN ingest_days i ON i.ingest_date = d.ingest_date AND i.model_id = %(model_id)s
        WHERE %(days)s::date[] IS NULL OR d.ingest_date = ANY(%(days)s::date[])
        ORDER BY d.ingest_date
        """,
        # The served model's view of each day (a shadow model's rows may sit beside it).
        {"days": days, "model_id": serving.id if (serving := model_registry.serving(conn)) else None},
    ).fetchall()
    statuses = []
    stored = catalog.partitions(conn)
    holding = {row[0]: layout.holding(stored, row[0]) for row in rows}
    # Read once per partition: the days of a sealed block share its index.
    indexes = {p.table: catalog.existing_vector_index(conn, p.table) for p in holding.values() if p}
    for day, documents, chunks, embedded, reused, loaded_at, dead in rows:
        held_by = holding[day]
        index = indexes[held_by.table] if held_by else None
        state = "exact scan" if index is None else f"{index.state.kind.value}{'' if index.state.valid else ' (INVALID)'}"
        if held_by is not None and held_by.is_block:
            state += f", sealed {held_by.first:%m-%d}..{held_by.last:%m-%d}"
        statuses.append(DayStatus(day, documents, chunks, embedded, reused, int(dead), state, loaded_at))
    return statuses


def markdown_status(statuses: list[DayStatus]) -> str:
    """The same facts as ``docvec status``, as a markdown table for Dagster's metadata panel."""
    lines = ["| day | documents | chunks | embedded | reused | open dead letters | index |",
             "|---|---|---|---|---|---|---|"]
    for s in statuses:
        lines.append(f"| {s.day} | {s.documents} | {s.chunks} | {s.embedded} | {s.reused} | "
                     f"{s.open_dead_letters} | {s.index} |")
    return "\n".join(lines)


def format_status(statuses: list[DayStatus], today: dt.date, window_days: int) -> str:
    horizon = retention.oldest_kept_day(today, window_days)
    lines = [f"retention: {window_days} days, oldest kept day {horizon} (today {today})",
             f"{'day':<12} {'documents':>9} {'chunks':>8} {'embedded':>9} {'reused':>7} {'dead letters':>12}  index"]
    for s in statuses:
        flag = "  (expired: next retention run drops it)" if s.day < horizon else ""
        lines.append(f"{s.day!s:<12} {s.documents:>9,} {s.chunks:>8,} {s.embedded:>9,} {s.reused:>7,} "
                     f"{s.open_dead_letters:>12,}  {s.index}{flag}")
    lines.append(f"{'total':<12} {sum(s.documents for s in statuses):>9,} {sum(s.chunks for s in statuses):>8,} "
                 f"{sum(s.embedded for s in statuses):>9,} {sum(s.reused for s in statuses):>7,} "
                 f"{sum(s.open_dead_letters for s in statuses):>12,}")
    return "\n".join(lines)
