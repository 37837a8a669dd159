"""What PostgreSQL's catalog says about ``chunks``: its partitions (days and sealed blocks) with their
rows and sizes, each partition's vector index, the vector column's dimension. Every query over
``pg_inherits`` lives here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.storage.layout import StoredPartition, holding, parse_partition_name
from pipeline.storage.queries import one
from pipeline.storage.vector_indexes import (
    DEFAULT_EF_SEARCH,
    DEFAULT_PROBES,
    AnnSettings,
    ExistingIndex,
    IndexSpec,
    parse_index,
)
from pipeline.storage.vector_storage import stored_column

# The partitions of chunks (c) and, joined to them, their vector indexes (x, i, am).
_PARTITIONS = "pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid"
_OF_CHUNKS = "h.inhparent = 'chunks'::regclass"
_VECTOR_INDEXES = (" JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class i ON i.oid = x.indexrelid"
                   " JOIN pg_am am ON am.oid = i.relam AND am.amname IN ('hnsw', 'ivfflat')")


def partitions(conn: psycopg.Connection[Any]) -> list[StoredPartition]:
    """Every docvec partition of ``chunks``, oldest first; partitions named otherwise are not ours and
    are never touched."""
    rows = conn.execute(
        "SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) "
        f"FROM {_PARTITIONS} WHERE {_OF_CHUNKS}"
    ).fetchall()
    found = []
    for name, tuples, size in rows:
        span = parse_partition_name(name)
        # The size is read from the latest catalog, the list from this statement's snapshot: NULL means a
        # concurrent seal or retention dropped the table meanwhile, and it is no longer there to plan with.
        if span is not None and size is not None:
            found.append(StoredPartition(name, span[0], span[1], int(tuples), int(size)))
    return sorted(found, key=lambda p: p.first)


def partition_for(conn: psycopg.Connection[Any], day: dt.date) -> StoredPartition | None:
    """The partition that holds ``day``: its own, or the sealed block it was merged into."""
    return holding(partitions(conn), day)


def _named_span(table: str) -> tuple[str, str, str]:
    """SQL over ``table``'s ``relname`` (a pg_class alias): whether it is named as a docvec partition,
    and its first and last day (names carry the range, ``layout.partition_name``)."""
    return (f"{table}.relname ~ '^chunks_[0-9]{{8}}(_[0-9]{{8}})?$'",
            f"to_date(substr({table}.relname, 8, 8), 'YYYYMMDD')", f"to_date(right({table}.relname, 8), 'YYYYMMDD')")


def partition_exists_sql(day_expression: str) -> str:
    """A SQL condition: some docvec partition covers the date ``day_expression`` (a column or a
    placeholder). Names carry the range, so this reads the catalog only."""
    named, first, last = _named_span("pc")
    return ("EXISTS (SELECT 1 FROM pg_inherits pi JOIN pg_class pc ON pc.oid = pi.inhrelid "
            f"WHERE pi.inhparent = 'chunks'::regclass AND {named} AND {day_expression} BETWEEN {first} AND {last})")


def relation_size(conn: psycopg.Connection[Any], name: str) -> int:
    """Bytes of a table with its indexes and TOAST (0 when it is gone)."""
    return int(one(conn, "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)", (name,))[0])


def chunks_dimension(conn: psycopg.Connection[Any]) -> int:
    return stored_column(conn).dim


def existing_vector_index(conn: psycopg.Connection[Any], table: str) -> ExistingIndex | None:
    """The table's pgvector index (an invalid one first, so it gets replaced), or None."""
    row = conn.execute(
        """
        SELECT ic.relname, am.amname, i.indisvalid, obj_description(ic.oid, 'pg_class'), ic.reloptions
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_am am ON am.oid = ic.relam
        WHERE i.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')
        ORDER BY i.indisvalid, ic.relname LIMIT 1
        """,
        (table,),
    ).fetchone()
    return parse_index(*row) if row else None


def index_spec_of(conn: psycopg.Connection[Any], table: str) -> IndexSpec | None:
    """The valid vector index ``table`` has now (kind, build and search parameters), to build the same
    on a table that replaces it; None when it has none or only an invalid one."""
    existing = existing_vector_index(conn, table)
    return existing.spec() if existing and existing.state.valid else None


def search_settings(conn: psycopg.Connection[Any]) -> AnnSettings:
    """The ANN settings a search over every partition needs: the largest ``ef_search`` and ``probes``
    recorded on any valid vector index (the values its recall was checked with), pgvector's defaults
    where no index records one."""
    return recorded_search(conn).ann


@dataclass(frozen=True)
class RecordedSearch:
    """What ``search_settings`` reads, and the rows of each HNSW-indexed partition a search over a range of
    days walks (the larger of the partition's and its index's row estimates)."""
    ann: AnnSettings
    hnsw_rows: tuple[int, ...]

    @property
    def hnsw_walked(self) -> int:
        """How many HNSW indexes the range walks."""
        return len(self.hnsw_rows)


def recorded_search(conn: psycopg.Connection[Any], since: dt.date | None = None,
                    until: dt.date | None = None) -> RecordedSearch:
    """``search_settings``, and the valid HNSW indexes of the partitions holding a day from ``since`` to
    ``until`` (None: unbounded), the partitions a search in that range walks (names carry the range)."""
    named, first, last = _named_span("c")
    comment = "obj_description(i.oid, 'pg_class')"
    recorded = f"CASE WHEN left({comment}, 1) = '{{' THEN {comment}::jsonb END"  # docvec's JSON record only
    ef_search, probes, rows = one(conn, f"""
        WITH valid AS (
            SELECT c.oid, am.amname = 'hnsw' AND {named}
                       AND (%(since)s::date IS NULL OR {last} >= %(since)s::date)
                       AND (%(until)s::date IS NULL OR {first} <= %(until)s::date) AS walked,
                   greatest(c.reltuples, i.reltuples, 0)::bigint AS rows, {recorded} AS record
            FROM {_PARTITIONS}{_VECTOR_INDEXES}
            WHERE {_OF_CHUNKS} AND x.indisvalid
        )
        SELECT max((record -> 'search' ->> 'ef_search')::int), max((record -> 'search' ->> 'probes')::int),
               (SELECT array_agg(rows ORDER BY oid) FROM (SELECT DISTINCT ON (oid) oid, rows FROM valid
                                                        WHERE walked ORDER BY oid, rows DESC) w)
        FROM valid
    """, {"since": since, "until": until})
    return RecordedSearch(AnnSettings(ef_search=int(ef_search or DEFAULT_EF_SEARCH),
                                      probes=int(probes or DEFAULT_PROBES)), tuple(int(r) for r in rows or ()))


@dataclass(frozen=True)
class IndexHealth:
    partition: str
    index: str
    kind: str
    valid: bool
    size_bytes: int
    rows_now: int
    rows_at_build: int | None


def vector_index_health(conn: psycopg.Connection[Any]) -> list[IndexHealth]:
    """Every vector index on a partition of ``chunks``, then every other invalid index of the schema
    (a failed concurrent build of any kind leaves one behind)."""
    rows = conn.execute(
        f"""
        SELECT c.relname, i.relname, am.amname, x.indisvalid, pg_relation_size(i.oid),
               greatest(c.reltuples, 0)::bigint, obj_description(i.oid, 'pg_class'), i.reloptions
        FROM {_PARTITIONS}{_VECTOR_INDEXES}
        WHERE {_OF_CHUNKS}
        ORDER BY c.relname
        """
    ).fetchall()
    health = []
    for partition, index, kind, valid, size, reltuples, comment, options in rows:
        if size is None:  # dropped by a concurrent seal or retention after this statement's snapshot
            continue
        built = parse_index(index, kind, valid, comment, options).state.built_rows if comment else None
        health.append(IndexHealth(partition, index, kind, bool(valid), int(size), int(reltuples), built))
    invalid_other = conn.execute(
        """
        SELECT t.relname, i.relname, am.amname, pg_relation_size(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_am am ON am.oid = i.relam JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE NOT x.indisvalid AND n.nspname = current_schema() AND am.amname NOT IN ('hnsw', 'ivfflat')
        """
    ).fetchall()
    health += [IndexHealth(table, index, kind, False, int(size), 0, None)
               for table, index, kind, size in invalid_other if size is not None]
    return health


@dataclass(frozen=True)
class ChunkTotals:
    chunks: int  # the planner's estimates, exact after each load's ANALYZE
    partitions: int
    largest_partition_rows: int


def chunk_totals(conn: psycopg.Connection[Any]) -> ChunkTotals:
    chunks, count, largest = one(conn, f"""
        SELECT coalesce(sum(c.reltuples::bigint) FILTER (WHERE c.reltuples > 0), 0), count(*),
               coalesce(max(c.reltuples::bigint), 0)
        FROM {_PARTITIONS} WHERE {_OF_CHUNKS}
    """)
    return ChunkTotals(int(chunks), int(count), int(largest))


def schema_sizes(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Bytes of every table of the schema, and of their indexes."""
    tables, indexes = one(conn, """
        SELECT coalesce(sum(pg_table_size(c.oid)), 0), coalesce(sum(pg_indexes_size(c.oid)), 0)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r'
    """)
    return int(tables), int(indexes)
