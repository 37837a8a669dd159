"""Per-day state of the store, for `docvec status` (and anything else that reports it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from pipeline.storage import catalog, day_summaries, layout, retention
from pipeline.storage import days as stored_days


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
    deleted: int = 0  # documents deleted as of the day (its tombstones): hidden from search
    restricted: int = 0  # the day's documents not readable by everyone (their readers are not *)


def day_statuses(conn: psycopg.Connection, days: list[dt.date] | None = None) -> list[DayStatus]:
    """Per-day state; all days, or only ``days``."""
    summaries = day_summaries.day_summaries(conn, days)
    statuses = []
    stored = catalog.partitions(conn)
    holding = {s.day: layout.holding(stored, s.day) for s in summaries}
    # Read once per partition: the days of a sealed block share its index.
    indexes = {p.table: catalog.existing_vector_index(conn, p.table) for p in holding.values() if p}
    restricted = stored_days.restricted_counts(conn)
    for summary in summaries:
        held_by = holding[summary.day]
        index = indexes[held_by.table] if held_by else None
        state = "exact scan" if index is None else f"{index.state.kind.value}{'' if index.state.valid else ' (INVALID)'}"
        if held_by is not None and held_by.is_block:
            state += f", sealed {held_by.first:%m-%d}..{held_by.last:%m-%d}"
        statuses.append(DayStatus(summary.day, summary.documents, summary.chunks, summary.embedded, summary.reused,
                                  summary.open_dead_letters, state, summary.loaded_at, summary.deleted,
                                  restricted.get(summary.day, 0)))
    return statuses


def markdown_status(statuses: list[DayStatus]) -> str:
    """The same facts as ``docvec status``, as a markdown table for Dagster's metadata panel."""
    restricted = any(s.restricted for s in statuses)  # a column only once some document names its readers
    lines = ["| day | documents | chunks | embedded | reused | open dead letters | deleted | "
             + ("restricted | " if restricted else "") + "index |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if restricted else "")]
    for s in statuses:
        lines.append(f"| {s.day} | {s.documents} | {s.chunks} | {s.embedded} | {s.reused} | "
                     f"{s.open_dead_letters} | {s.deleted} | {f'{s.restricted} | ' if restricted else ''}{s.index} |")
    return "\n".join(lines)


def format_status(statuses: list[DayStatus], today: dt.date, window_days: int) -> str:
    horizon = retention.oldest_kept_day(today, window_days)
    # Documents whose readers are not * get a column once some exist (a store without permissions prints as before).
    restricted = any(s.restricted for s in statuses)
    lines = [f"retention: {window_days} days, oldest kept day {horizon} (today {today})",
             f"{'day':<12} {'documents':>9} {'chunks':>8} {'embedded':>9} {'reused':>7} {'dead letters':>12} "
             f"{'deleted':>7}{' restricted' if restricted else ''}  index"]
    for s in statuses:
        flag = "  (expired: next retention run drops it)" if s.day < horizon else ""
        lines.append(f"{s.day!s:<12} {s.documents:>9,} {s.chunks:>8,} {s.embedded:>9,} {s.reused:>7,} "
                     f"{s.open_dead_letters:>12,} {s.deleted:>7,}{f' {s.restricted:>10,}' if restricted else ''}  "
                     f"{s.index}{flag}")
    lines.append(f"{'total':<12} {sum(s.documents for s in statuses):>9,} {sum(s.chunks for s in statuses):>8,} "
                 f"{sum(s.embedded for s in statuses):>9,} {sum(s.reused for s in statuses):>7,} "
                 f"{sum(s.open_dead_letters for s in statuses):>12,} {sum(s.deleted for s in statuses):>7,}"
                 + (f" {sum(s.restricted for s in statuses):>10,}" if restricted else ""))
    return "\n".join(lines)
