"""The nearest chunks for a search as principals, by the cheaper of two plans that return the same rows.

Row-level security (migrations 0012, 0014) decides which chunks a caller may read on every statement,
whatever its plan. When the caller may read most of the store, walking each day's HNSW index with
pgvector's iterative scan (``chunk_search.nearest``) finds k readable chunks after a few candidates. When
it may read few (0.1% of a 1M-chunk store), that walk visits ~1,000× more candidates than it keeps, and an
exact search over the readable chunks alone is cheaper: the readable document versions come from the
GIN index on ``documents.readers`` (the policy's own condition), their chunks by the documents key, and
all of them are ordered by exact cosine distance, so it returns the true k nearest readable chunks.

A bounded probe picks the plan: the readable versions, counted up to ``EXACT_MAX_READABLE_CHUNKS + 1``
rows (so it costs the same on any store size), and their chunks. Neither plan names a reader: the probe
and both statements read what the policies let the session read, so the choice can make a search
faster or slower, never show more (docs/RELIABILITY.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pipeline.storage import chunk_search
from pipeline.storage.chunk_search import MatchedChunk, Scope
from pipeline.storage.sqlstate import connection_guard
from pipeline.storage.vector_indexes import AnnSettings

# At most this many readable chunks (of every version and model the caller may read) are searched
# exactly; more walk the HNSW indexes. Measured with benchmarks/permissions_benchmark.py at 1M chunks
# (6 HNSW partitions, k=10) on a 2-core VM, each plan forced for the same queries (benchmarks/RESULTS.md):
# the exact search costs about 0.5x + 0.33x per 1,000 readable chunks of an unrestricted search (1,110
# chunks: 0.8x; 10,110: 3.6-4x), the walk about 2.25x at 1% readable and in proportion to how few it may
# read (0.1%: 16-20x). They cross near 7,600 chunks; the bound is lower because every caller who may read
# more pays the probe, which reads up to this many documents rows (~2-4 ms at 8,000 on that VM, half at
# 5,000). On a smaller store the walk finds readable chunks sooner and the crossing comes earlier (about
# as the square root of the store's size), so there a caller near the bound may be searched exactly at up
# to ~2x where the walk would be quicker. 0: always walk (but a caller who may read nothing is answered
# without a search).
EXACT_MAX_READABLE_CHUNKS = 5_000


@dataclass(frozen=True)
class ReadableShare:
    """What the session may read, counted no further than ``limit`` + 1 document versions: the
    versions and their chunks (``chunk_count``)."""
    versions: int
    chunks: int
    limit: int

    @property
    def exact(self) -> bool:
        """Few enough readable chunks to order them all by exact distance. A version holds at least one
        chunk, so more than ``limit`` versions (the probe stopped) is more than ``limit`` chunks."""
        return self.versions <= self.limit and self.chunks <= self.limit

    def describe(self) -> str:
        """The plan chosen, as the first line of ``--explain``'s vector plan."""
        if not self.versions:
            return "docvec plan: nothing readable, so no statement runs (the search returns no hits)"
        if self.exact:
            return (f"docvec plan: exact nearest over the {self.chunks:,} readable chunks of {self.versions:,} "
                    f"document versions (at most {self.limit:,}: EXACT_MAX_READABLE_CHUNKS)")
        return (f"docvec plan: vector index walk (HNSW iterative scan): more than {self.limit:,} readable chunks "
                "(EXACT_MAX_READABLE_CHUNKS)")


# What the probe reads: the documents rows row-level security lets the session read, no more than a bound.
PROBE = "SELECT count(*), coalesce(sum(chunk_count), 0) FROM (SELECT chunk_count FROM documents LIMIT %s) AS readable"


def readable_share(conn: psycopg.Connection[Any]) -> ReadableShare:
    """The probe: the session's readable document versions and their chunks, up to a bound. Under row-level
    security the documents policy finds them in the GIN index on ``readers`` when few match, or stops
    a sequential scan early when most do."""
    limit = EXACT_MAX_READABLE_CHUNKS
    with connection_guard("counting the readable documents"):
        # Planned for each search (never a prepared generic plan): the plan depends on who asks, the GIN
        # bitmap for a few readable versions, a sequential scan that stops early for many; never a parallel
        # one (starting workers cost 10 ms of a 2 ms probe at 1M chunks), for this statement only.
        previous = conn.execute("SELECT current_setting('max_parallel_workers_per_gather'), "
                                "set_config('max_parallel_workers_per_gather', '0', true)").fetchone()
        row = conn.execute(PROBE, (limit + 1,), prepare=False).fetchone()
        if previous is not None:
            conn.execute("SELECT set_config('max_parallel_workers_per_gather', %s, true)", (previous[0],))
    assert row is not None
    return ReadableShare(versions=int(row[0]), chunks=int(row[1]), limit=limit)


def _exact_statement(vector: np.ndarray, scope: Scope, k: int) -> tuple[sql.Composed, dict[str, Any]]:
    versions, params = chunk_search.version_conditions(scope, "v")
    chunks, values = chunk_search.chunk_conditions(scope)
    params.update(values, query=vector, k=k)
    # The readable versions (the policy's bitmap of documents) that the version rules keep (latest, not
    # deleted, within the dates), tested once per version (MATERIALIZED: never once per chunk), then their
    # chunks by the documents key. Ordering by a computed distance (``+ 0``, the same order) is what no
    # vector index can answer, so the planner cannot turn this back into an index walk: every readable
    # chunk in scope is measured.
    statement = sql.SQL(
        """
        WITH versions AS MATERIALIZED (
            SELECT v.ingest_date, v.doc_id FROM documents v WHERE {versions}
        )
        SELECT c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata,
               c.embedding <=> %(query)s AS distance
        FROM versions v
        JOIN chunks c ON c.ingest_date = v.ingest_date AND c.doc_id = v.doc_id
        WHERE {chunks}
        ORDER BY (c.embedding <=> %(query)s) + 0, c.chunk_id
        LIMIT %(k)s
        """
    ).format(versions=sql.SQL(" AND ").join(versions), chunks=sql.SQL(" AND ").join(chunks))
    return statement, params


def nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
            ann: AnnSettings) -> list[MatchedChunk]:
    """``chunk_search.nearest`` for a session searching as principals: the ``k`` nearest readable chunks
    in ``scope``, nearest first, exactly when few are readable (none: no statement at all)."""
    with connection_guard("searching"):
        chunk_search.require_dimension(conn, vector)
    share = readable_share(conn)
    if not share.versions:
        return []
    if not share.exact:
        return chunk_search.nearest(conn, vector, scope, k, ann)
    statement, params = _exact_statement(vector, scope, k)
    with connection_guard("searching"), conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(statement, params).fetchall()
    return [MatchedChunk(**{**row, "distance": float(row["distance"])}) for row in rows]


def explain_nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
                    ann: AnnSettings) -> str:
    """The plan ``nearest`` chooses (first line) and the EXPLAIN ANALYZE of the statement it runs."""
    share = readable_share(conn)
    if not share.versions:
        return share.describe()
    if not share.exact:
        return share.describe() + "\n" + chunk_search.explain_nearest(conn, vector, scope, k, ann)
    statement, params = _exact_statement(vector, scope, k)
    with connection_guard("explaining the search"):
        chunk_search.require_dimension(conn, vector)
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    return share.describe() + "\n" + chunk_search.shortened_plan(r[0] for r in rows)
