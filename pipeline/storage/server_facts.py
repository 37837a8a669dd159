"""What the server says about itself, for ``docvec doctor``: its version, settings in bytes, dead tuples
per table and the heaviest statements (pg_stat_statements, where it is enabled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.storage.queries import one

_UNIT_BYTES = {"8kB": 8192, "kB": 1024, "MB": 1024**2, "B": 1}


@dataclass(frozen=True)
class ServerIdentity:
    version: str
    database: str
    pgvector: str | None


@dataclass(frozen=True)
class TableBloat:
    table: str
    live: int
    dead: int
    last_autovacuum: str | None

    @property
    def dead_ratio(self) -> float:
        return self.dead / (self.live + self.dead) if self.live + self.dead else 0.0


@dataclass(frozen=True)
class StatementStats:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int


def identity(conn: psycopg.Connection[Any]) -> ServerIdentity:
    version, database = one(conn, "SELECT current_setting('server_version'), current_database()")
    pgvector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return ServerIdentity(str(version), str(database), str(pgvector[0]) if pgvector else None)


def setting_bytes(conn: psycopg.Connection[Any], name: str) -> int:
    """A memory setting (shared_buffers, work_mem, …) in bytes, whatever unit the server reports it in."""
    value, unit = one(conn, "SELECT setting::bigint, unit FROM pg_settings WHERE name = %s", (name,))
    return int(value) * _UNIT_BYTES.get(unit or "B", 1)


def table_bloat(conn: psycopg.Connection[Any], limit: int = 10) -> list[TableBloat]:
    """The tables of docvec's schema with the most dead tuples."""
    rows = conn.execute(
        """
        SELECT relname, n_live_tup, n_dead_tup, last_autovacuum::text
        FROM pg_stat_user_tables WHERE schemaname = current_schema()
        ORDER BY n_dead_tup DESC, relname LIMIT %s
        """, (limit,)
    ).fetchall()
    return [TableBloat(name, int(live), int(dead), vacuumed) for name, live, dead, vacuumed in rows]


def top_statements(conn: psycopg.Connection[Any], limit: int) -> tuple[list[StatementStats] | None, str]:
    """The statements that took the most time in this database, or None and a sentence saying how to
    enable pg_stat_statements (or why it cannot be read)."""
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    if not installed:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'").fetchone()
        if available:
            return None, ("pg_stat_statements is not enabled: add it to shared_preload_libraries, restart the "
                          "server, then run `CREATE EXTENSION pg_stat_statements;` in this database")
        return None, ("pg_stat_statements is not available on this server (docvec's embedded server does not ship "
                      "it): install the server's contrib package, add it to shared_preload_libraries, restart, "
                      "then `CREATE EXTENSION pg_stat_statements;`")
    try:
        rows = conn.execute(
            """
            SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160), calls, total_exec_time, mean_exec_time, rows
            FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC LIMIT %s
            """, (limit,)).fetchall()
    except psycopg.Error as exc:  # installed but not preloaded, or no permission to read it
        return None, f"pg_stat_statements is installed but cannot be read: {exc.diag.message_primary or exc}"
    return [StatementStats(q, int(c), round(float(t), 1), round(float(m), 3), int(r)) for q, c, t, m, r in rows], ""
