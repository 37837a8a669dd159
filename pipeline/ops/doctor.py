"""`docvec doctor`: the server, its settings against what the data needs, index health, bloat and the
heaviest statements, in one report (text or JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from pipeline.storage import catalog, server_facts
from pipeline.storage.catalog import IndexHealth
from pipeline.storage.host import machine_memory
from pipeline.storage.server_facts import StatementStats, TableBloat
from pipeline.storage.vector_indexes import hnsw_build_bytes

MiB = 1024**2
DEAD_TUPLE_WARN_RATIO = 0.2
STATEMENTS_SHOWN = 5
RESTART_SETTINGS = frozenset({"shared_buffers"})  # the others take effect on a reload


@dataclass(frozen=True)
class SettingCheck:
    name: str
    current_bytes: int
    recommended_bytes: int
    why: str

    @property
    def ok(self) -> bool:
        return self.current_bytes >= self.recommended_bytes

    @property
    def fix(self) -> str:
        """The statement that applies the recommendation, and when it takes effect."""
        statement = f"ALTER SYSTEM SET {self.name} = '{self.recommended_bytes // MiB}MB'"
        if self.name in RESTART_SETTINGS:
            return f"{statement}, then restart the server (the embedded one: docvec down && docvec up)"
        return f"{statement}; SELECT pg_reload_conf()"


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
    statements: list[StatementStats] | None = None
    statements_hint: str = ""

    @property
    def problems(self) -> list[str]:
        found = [f"{s.name} is {_size(s.current_bytes)}; {_size(s.recommended_bytes)} recommended ({s.why}): {s.fix}"
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


def recommended_settings(conn: psycopg.Connection, vector_index_bytes: int, largest_rows: int, dim: int,
                         hnsw_m: int = 16) -> list[SettingCheck]:
    """What this data wants: searches hit the vector indexes, so they should fit shared_buffers (up to a
    quarter of memory); an HNSW build stays fast only while the largest day's graph fits
    maintenance_work_mem; 16 MB of work_mem keeps result sorts and hash joins in memory."""
    quarter = machine_memory() // 4
    return [
        SettingCheck("shared_buffers", server_facts.setting_bytes(conn, "shared_buffers"),
                     min(quarter, max(128 * MiB, int(vector_index_bytes * 1.2))),
                     "the vector indexes plus margin, at most a quarter of this machine's memory"),
        SettingCheck("maintenance_work_mem", server_facts.setting_bytes(conn, "maintenance_work_mem"),
                     min(quarter, max(64 * MiB, hnsw_build_bytes(largest_rows, dim, hnsw_m))),
                     f"an HNSW graph of the largest partition ({largest_rows:,} rows) built in memory"),
        SettingCheck("work_mem", server_facts.setting_bytes(conn, "work_mem"), 16 * MiB,
                     "sorting and joining search candidates in memory"),
    ]


def diagnose(conn: psycopg.Connection[Any]) -> Report:
    server = server_facts.identity(conn)
    totals = catalog.chunk_totals(conn)
    table_bytes, index_bytes = catalog.schema_sizes(conn)
    dim = catalog.chunks_dimension(conn)
    indexes = catalog.vector_index_health(conn)
    vector_bytes = sum(i.size_bytes for i in indexes if i.kind in ("hnsw", "ivfflat"))
    statements, hint = server_facts.top_statements(conn, STATEMENTS_SHOWN)
    return Report(
        server_version=server.version, pgvector_version=server.pgvector, database=server.database,
        chunks=totals.chunks, days=totals.partitions, table_bytes=table_bytes, index_bytes=index_bytes,
        vector_index_bytes=vector_bytes, largest_partition_rows=totals.largest_partition_rows, dim=dim,
        settings=recommended_settings(conn, vector_bytes, totals.largest_partition_rows, dim),
        indexes=indexes, bloat=server_facts.table_bloat(conn), statements=statements, statements_hint=hint,
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
        lines.append(f"  {st.total_ms:>10.1f} ms total {st.calls:>7} calls {st.mean_ms:>9.3f} ms mean  {st.query}")
    problems = report.problems
    lines += ["", f"problems: {len(problems)}"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)
