"""`docvec doctor`: the server, its settings against what the data needs, index health, bloat and the
heaviest statements, in one report (text or JSON)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from pipeline.storage import catalog
from pipeline.storage.catalog import IndexHealth
from pipeline.storage.db import one
from pipeline.storage.vector_indexes import hnsw_build_bytes

MiB = 1024**2
DEAD_TUPLE_WARN_RATIO = 0.2
STATEMENTS_SHOWN = 5


@dataclass(frozen=True)
class SettingCheck:
    name: str
    current_bytes: int
    recommended_bytes: int
    why: str

    @property
    def ok(self) -> bool:
        return self.current_bytes >= self.recommended_bytes


@dataclass(frozen=True)
class TableBloat:
    table: str
    live: int
    dead: int
    last_autovacuum: str | None

    @property
    def dead_ratio(self) -> float:
        return self.dead / (self.live + self.dead) if self.live + self.dead else 0.0


@dataclass
class Report:
    server_version: str
    pgvector_version: str | None
    database: str
    chunks: int
    days: int
    table_bytes: int
    index_bytes: int
    vector_index_bytes: int
    largest_partition_rows: int
    dim: int
    settings: list[SettingCheck] = field(default_factory=list)
    indexes: list[IndexHealth] = field(default_factory=list)
    bloat: list[TableBloat] = field(default_factory=list)
    statements: list[dict[str, Any]] | None = None
    statements_hint: str = ""

    @property
    def problems(self) -> list[str]:
        found = [f"{s.name} is {_size(s.current_bytes)}; {_size(s.recommended_bytes)} recommended ({s.why})"
                 for s in self.settings if not s.ok]
        found += [f"index {i.index} on {i.partition} is INVALID: rerun the vector_index asset"
                  for i in self.indexes if not i.valid]
        found += [f"{b.table}: {b.dead_ratio:.0%} dead tuples: VACUUM (ANALYZE) {b.table}"
                  for b in self.bloat if b.dead_ratio > DEAD_TUPLE_WARN_RATIO and b.dead > 1000]
        return found

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = self.problems
        return data


def _size(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", MiB), ("kB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _setting_bytes(conn: psycopg.Connection, name: str) -> int:
    value, unit = one(conn, "SELECT setting::bigint, unit FROM pg_settings WHERE name = %s", (name,))
    scale = {"8kB": 8192, "kB": 1024, "MB": MiB, "B": 1}.get(unit or "B", 1)
    return int(value) * scale


def _machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def recommended_settings(conn: psycopg.Connection, vector_index_bytes: int, largest_rows: int, dim: int,
                         hnsw_m: int = 16) -> list[SettingCheck]:
    """What this data wants: searches hit the vector indexes, so they should fit shared_buffers (up to a
    quarter of memory); an HNSW build stays fast only while the largest day's graph fits
    maintenance_work_mem; 16 MB of work_mem keeps result sorts and hash joins in memory."""
    quarter = _machine_memory() // 4
    return [
        SettingCheck("shared_buffers", _setting_bytes(conn, "shared_buffers"),
                     min(quarter, max(128 * MiB, int(vector_index_bytes * 1.2))),
                     "the vector indexes plus margin, at most a quarter of this machine's memory"),
        SettingCheck("maintenance_work_mem", _setting_bytes(conn, "maintenance_work_mem"),
                     min(quarter, max(64 * MiB, hnsw_build_bytes(largest_rows, dim, hnsw_m))),
                     f"an HNSW graph of the largest partition ({largest_rows:,} rows) built in memory"),
        SettingCheck("work_mem", _setting_bytes(conn, "work_mem"), 16 * MiB,
                     "sorting and joining search candidates in memory"),
    ]


def _bloat(conn: psycopg.Connection) -> list[TableBloat]:
    rows = conn.execute(
        """
        SELECT relname, n_live_tup, n_dead_tup, last_autovacuum::text
        FROM pg_stat_user_tables WHERE schemaname = current_schema()
        ORDER BY n_dead_tup DESC, relname LIMIT 10
        """
    ).fetchall()
    return [TableBloat(name, int(live), int(dead), vacuumed) for name, live, dead, vacuumed in rows]


def _statements(conn: psycopg.Connection) -> tuple[list[dict[str, Any]] | None, str]:
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
            """, (STATEMENTS_SHOWN,)).fetchall()
    except psycopg.Error as exc:  # installed but not preloaded, or no permission to read it
        return None, f"pg_stat_statements is installed but cannot be read: {exc.diag.message_primary or exc}"
    return [{"query": q, "calls": int(c), "total_ms": round(float(t), 1), "mean_ms": round(float(m), 3),
             "rows": int(r)} for q, c, t, m, r in rows], ""


def diagnose(conn: psycopg.Connection[Any]) -> Report:
    version, database = one(conn, "SELECT current_setting('server_version'), current_database()")
    pgvector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    totals = catalog.chunk_totals(conn)
    table_bytes, index_bytes = catalog.schema_sizes(conn)
    dim = catalog.chunks_dimension(conn)
    indexes = catalog.vector_index_health(conn)
    vector_bytes = sum(i.size_bytes for i in indexes if i.kind in ("hnsw", "ivfflat"))
    statements, hint = _statements(conn)
    return Report(
        server_version=str(version), pgvector_version=pgvector[0] if pgvector else None, database=str(database),
        chunks=totals.chunks, days=totals.partitions, table_bytes=table_bytes, index_bytes=index_bytes,
        vector_index_bytes=vector_bytes, largest_partition_rows=totals.largest_partition_rows, dim=dim,
        settings=recommended_settings(conn, vector_bytes, totals.largest_partition_rows, dim),
        indexes=indexes, bloat=_bloat(conn), statements=statements, statements_hint=hint,
    )


def format_report(report: Report) -> str:
    lines = [
        f"server        PostgreSQL {report.server_version}, pgvector {report.pgvector_version or 'NOT INSTALLED'}, "
        f"database {report.database}",
        f"data          {report.chunks:,} chunks in {report.days} partitions ({report.dim}-d); tables "
        f"{_size(report.table_bytes)}, indexes {_size(report.index_bytes)} (vector {_size(report.vector_index_bytes)})",
        "",
        "settings      current      recommended  why",
    ]
    for s in report.settings:
        mark = "ok " if s.ok else "LOW"
        lines.append(f"  {mark} {s.name:<21} {_size(s.current_bytes):>10}   {_size(s.recommended_bytes):>10}  {s.why}")
    lines += ["", f"vector indexes ({len([i for i in report.indexes if i.kind in ('hnsw', 'ivfflat')])}):"]
    if not report.indexes:
        lines.append("  none: every partition is searched by exact scan "
                     "(the policy indexes partitions past its row threshold)")
    for i in report.indexes:
        grown = f", built at {i.rows_at_build:,} rows" if i.rows_at_build is not None else ""
        lines.append(f"  {'ok     ' if i.valid else 'INVALID'} {i.index} ({i.kind}) on {i.partition}: "
                     f"{_size(i.size_bytes)}, {i.rows_now:,} rows{grown}")
    lines += ["", "dead tuples (top tables):"]
    for b in report.bloat[:5]:
        lines.append(f"  {b.table:<32} {b.live:>10,} live {b.dead:>8,} dead ({b.dead_ratio:.0%})")
    lines += ["", "top statements (pg_stat_statements):"]
    if report.statements is None:
        lines.append(f"  {report.statements_hint}")
    for st in report.statements or []:
        lines.append(f"  {st['total_ms']:>10.1f} ms total {st['calls']:>7} calls {st['mean_ms']:>9.3f} ms mean  "
                     f"{st['query']}")
    problems = report.problems
    lines += ["", f"problems: {len(problems)}"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)
