"""One enforcement of the retention window, and what it did (see ``storage/retention.py`` for how)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from pipeline.ops.reports import LogLines, Metadata
from pipeline.storage import dead_letters, history, retention
from pipeline.storage.history import HistoryPurge
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


@dataclass(frozen=True)
class HistoryReport:
    """What enforcing the window on a collection purged: history only (see ``storage/history.py``)."""
    purge: HistoryPurge
    window_days: int
    today: dt.date
    dead_letters_deleted: int

    def lines(self) -> list[str]:
        """What went, for the run's log."""
        purge = self.purge
        verb = "would purge" if purge.dry_run else "purged"
        return [f"{verb} {purge.versions:,} versions no longer live on {purge.horizon} or later "
                f"({purge.chunks:,} chunks); live documents stay, however old",
                *(f"rebuilt {table} from its remaining rows" for table in purge.compacted),
                *(f"dropped {table}: nothing left in it" for table in purge.dropped)]

    def warnings(self) -> list[str]:
        return []

    def metadata(self) -> Metadata:
        """What the step did, as plain values for its asset's metadata."""
        purge = self.purge
        return {
            "window_days": self.window_days,
            "today": str(self.today),
            "retention_horizon": str(purge.horizon),
            "mode": "collection",
            "dry_run": purge.dry_run,
            "versions_purged": purge.versions,
            "rows_purged": purge.chunks,
            "tombstones_deleted": purge.tombstones,
            "partitions_compacted": ", ".join(purge.compacted) or "none",
            "partitions_dropped": ", ".join(purge.dropped) or "none",
            "dead_letters_deleted": self.dead_letters_deleted,
        }


def enforce_retention(conn: psycopg.Connection, today: dt.date, window_days: int, *, dry_run: bool = False,
                      log: LogLines, collection: bool = False) -> RetentionReport | HistoryReport:
    """Drop (or, with ``dry_run``, only report) every day older than the window; progress to ``log``.
    For a ``collection``, only history older than the window goes: live documents stay."""
    if collection:
        horizon = retention.oldest_kept_day(today, window_days)
        purge = history.purge(conn, horizon, dry_run=dry_run)
        letters = dead_letters.delete_resolved_before(conn, horizon, dry_run=dry_run)
        return HistoryReport(purge, window_days, today, letters)
    result = retention.apply_retention(conn, today, window_days, dry_run=dry_run, log=log)
    return RetentionReport(result, window_days, today)
