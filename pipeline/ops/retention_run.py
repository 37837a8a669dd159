"""One enforcement of the retention window, and what it did (see ``storage/retention.py`` for how)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from pipeline.ops.reports import LogLines, Metadata
from pipeline.storage import retention
from pipeline.storage.retention import RetentionResult


@dataclass(frozen=True)
class RetentionReport:
    """What ``enforce_retention`` dropped (or, in a dry run, would drop) and what it left to the next run."""
    result: RetentionResult
    window_days: int
    today: dt.date

    def lines(self) -> list[str]:
        """One line per partition dropped or trimmed, for the run's log."""
        verb = "would drop" if self.result.dry_run else "dropped"
        return [f"{verb} {p.first}..{p.last} of {p.table}{f' (its later days rebuilt as {p.kept_as})' if p.kept_as else ''}"
                f": {p.rows:,} chunks, {p.bytes:,} bytes" for p in self.result.dropped]

    def warnings(self) -> list[str]:
        """What the run log should flag: days left to the next run."""
        busy = self.result.skipped_busy
        return [f"skipped days being ingested right now: {busy}"] if busy else []

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        result = self.result
        return {
            "window_days": self.window_days,
            "today": str(self.today),
            "retention_horizon": str(result.horizon),
            "dry_run": result.dry_run,
            "days_dropped": len(result.days),
            "dropped_days": [str(day) for day in result.days],
            "blocks_trimmed": {p.table: p.kept_as for p in result.dropped if p.kept_as},
            "rows_dropped": result.rows,
            "bytes_freed": result.bytes,
            "documents_deleted": result.documents_deleted,
            "dead_letters_deleted": result.dead_letters_deleted,
            "skipped_busy_days": len(result.skipped_busy),
            "seconds": round(result.seconds, 3),
        }


def enforce_retention(conn: psycopg.Connection, today: dt.date, window_days: int, *, dry_run: bool = False,
                      log: LogLines) -> RetentionReport:
    """Drop (or, with ``dry_run``, only report) every day older than the window; progress to ``log``."""
    result = retention.apply_retention(conn, today, window_days, dry_run=dry_run, log=log)
    return RetentionReport(result, window_days, today)
