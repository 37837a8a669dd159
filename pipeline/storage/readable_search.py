"""The nearest chunks for a search as principals, by the cheaper of two plans that return the same rows.

Row-level security (migrations 0012, 0014, 0015) decides which chunks a caller may read on every
statement, whatever its plan, from the readers each chunk row carries (no lookup per chunk). When the
caller may read most of the store, walking each day's HNSW index with pgvector's iterative scan
(``chunk_search.nearest``) finds k readable chunks after a few candidates. When it may read few (1% of a
1M-chunk store), that walk visits ~100x more candidates than it keeps, and an exact search over the
readable chunks alone is cheaper: the readable document versions come from the GIN index on
``documents.readers`` (the policy's own condition), their chunks from the GIN index on ``chunks.readers``
(one bitmap per partition, joined to those versions by hash), and all of them are ordered by exact
cosine distance, so it returns the true k nearest readable chunks.

A bounded probe picks the plan: the readable versions, counted up to ``EXACT_MAX_READABLE_CHUNKS + 1``
rows (so it costs the same on any store size), and their chunks; a caller the planner expects to read
far more walks without it. Neither plan names a reader: the probe and both statements read what the
policies let the session read, so the choice can make a search faster or slower, never show more
(docs/RELIABILITY.md)."""

from __future__ import annotations

import json
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
from pipeline.storage.vector_storage import VectorColumn

# At most this many readable chunks (of every version and model the caller may read) are searched
# exactly; more walk the HNSW indexes. Measured with benchmarks/permissions_benchmark.py at 1M chunks
# (6 HNSW partitions, k=10) on a 2-core VM, each plan forced for the same queries (benchmarks/RESULTS.md).
# Since chunks carry their readers (migration 0015, with a GIN index on them) the exact search reads a
# caller's chunks as one bitmap per partition: 10,110 readable chunks cost 63-65 ms where the walk took
# 74-140 ms and an unrestricted search 33-39 ms (a loaded machine; 1,110: 16 ms against a 24-530 ms
# walk). Before, 10,110 chunks cost 114 ms exactly, and the bound was 5,000. On a smaller store the walk
# finds readable chunks sooner, so there a caller near the bound may be searched exactly where the walk
# would be quicker, both fast. 0: always walk (but a caller who may read nothing is answered without a
# search).
EXACT_MAX_READABLE_CHUNKS = 15_000
# A caller the planner expects to read more than this many times the bound walks without the probe: the
# probe reads up to the bound's documents rows, ~10 ms at 15,000 on a loaded 2-core VM, which a caller
# who may read most of the store would pay on every search for nothing. The planner's figure comes from
# the statistics of ``chunks.readers`` (the session's principals are known when it plans), so it is
# rough: the margin keeps a caller near the bound on the counted path. Stale statistics can only send a
# caller to the slower plan, never change the hits.
ESTIMATE_MARGIN = 4


@dataclass(frozen=True)
class ReadableShare:
    """What the session may read, counted no further than ``limit`` + 1 document versions: the
    versions and their chunks (``chunk_count``)."""
    versions: int
    chunks: int
    limit: int
    estimated: bool = False  # the planner's estimate of the readable chunks, not a count: the probe was skipped

    @property
    def exact(self) -> bool:
        """Few enough readable chunks to order them all by exact distance. A version holds at least one
        chunk, so more than ``limit`` versions (the probe stopped) is more than ``limit`` chunks."""
        return self.versions <= self.limit and self.chunks <= self.limit

    def describe(self) -> str:
        """The plan chosen, as the first line of ``--explain``'s vector plan."""
        if self.estimated:
            return (f"docvec plan: vector index walk (HNSW iterative scan): the planner expects ~{self.chunks:,} "
                    f"readable chunks, over {ESTIMATE_MARGIN}x EXACT_MAX_READABLE_CHUNKS ({self.limit:,}), "
                    "so none were counted")
        if not self.versions:
            return "docvec plan: nothing readable, so no statement runs (the search returns no hits)"
        if self.exact:
            return (f"docvec plan: exact nearest over the {self.chunks:,} readable chunks of {self.versions:,} "
                    f"document versions (at most {self.limit:,}: EXACT_MAX_READABLE_CHUNKS)")
        return (f"docvec plan: vector index walk (HNSW iterative scan): more than {self.limit:,} readable chunks "
                "(EXACT_MAX_READABLE_CHUNKS)")


# What the probe reads: the documents rows row-level security lets the session read, no more than a bound.
PROBE = "SELECT count(*), coalesce(sum(chunk_count), 0) FROM (SELECT chunk_count FROM documents LIMIT %s) AS readable"


def expected_readable_chunks(conn: psycopg.Connection[Any]) -> int:
    """The planner's estimate of the chunks the session may read (no row is read: row-level security's
    conditions, with the session's principals, against each partition's statistics of ``readers``)."""
    with connection_guard("estimating the readable chunks"):
        row = conn.execute("EXPLAIN (FORMAT JSON) SELECT 1 FROM chunks", prepare=False).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return int(plan[0]["Plan"]["Plan Rows"])


def readable_share(conn: psycopg.Connection[Any]) -> ReadableShare:
    """The probe: the session's readable document versions and their chunks, up to a bound. Under row-level
    security the documents policy finds them in the GIN index on ``readers`` when few match, or stops
    a sequential scan early when most do. Skipped (an estimate instead) when the planner expects far more
    than the bound."""
    limit = EXACT_MAX_READABLE_CHUNKS
    if limit > 0:
        expected = expected_readable_chunks(conn)
        if expected > ESTIMATE_MARGIN * limit:
            return ReadableShare(versions=limit + 1, chunks=expected, limit=limit, estimated=True)
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


def _exact_statement(vector: np.ndarray, scope: Scope, k: int,
                     column: VectorColumn) -> tuple[sql.Composed, dict[str, Any]]:
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
               c.embedding <=> {query} AS distance
        FROM versions v
        JOIN chunks c ON c.ingest_date = v.ingest_date AND c.doc_id = v.doc_id
        WHERE {chunks}
        ORDER BY (c.embedding <=> {query}) + 0, c.chunk_id
        LIMIT %(k)s
        """
    ).format(versions=sql.SQL(" AND ").join(versions), chunks=sql.SQL(" AND ").join(chunks), query=column.query())
    return statement, params


def nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
            ann: AnnSettings) -> list[MatchedChunk]:
    """``chunk_search.nearest`` for a session searching as principals: the ``k`` nearest readable chunks
    in ``scope``, nearest first, exactly when few are readable (none: no statement at all)."""
    with connection_guard("searching"):
        column = chunk_search.require_dimension(conn, vector)
    share = readable_share(conn)
    if not share.versions:
        return []
    if not share.exact:
        return chunk_search.nearest(conn, vector, scope, k, ann)
    statement, params = _exact_statement(vector, scope, k, column)
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
    with connection_guard("explaining the search"):
        statement, params = _exact_statement(vector, scope, k, chunk_search.require_dimension(conn, vector))
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
    return share.describe() + "\n" + chunk_search.shortened_plan(r[0] for r in rows)
