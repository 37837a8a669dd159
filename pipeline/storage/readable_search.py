"""The nearest chunks for a search as principals, by the cheaper of two plans that return the same rows.

Row-level security (migrations 0012, 0014, 0015) decides which chunks a caller may read on every
statement, whatever its plan, from the readers each chunk row carries (no lookup per chunk). When the
caller may read most of the store, walking each day's HNSW index with pgvector's iterative scan
(``chunk_search.nearest``) finds k readable chunks after a few candidates. When it may read few (1% of a
1M-chunk store), that walk visits ~100x more candidates than it keeps, and an exact search over the
readable chunks alone is cheaper: the readable chunks in scope come from the GIN index on
``chunks.readers`` (the policy's own condition, one bitmap per partition), all of them are ordered by
exact cosine distance, and the version rules (latest version, not deleted) are tested on the nearest few;
should those hold fewer than k current versions, on every readable version. So it returns the true k
nearest readable chunks of current versions.

A bounded probe picks the plan: the readable versions, counted up to ``EXACT_MAX_READABLE_CHUNKS + 1``
rows (so it costs the same on any store size), and their chunks; a caller the planner expects to read
far more walks without it. Neither plan names a reader: the probe and both statements read what the
policies let the session read, so the choice can make a search faster or slower, never show more
(docs/RELIABILITY.md)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
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
# walk). Before, 10,110 chunks cost 114 ms exactly, and the bound was 5,000. With the version rules
# tested on the pool alone (a quiet machine, 6 GB of shared buffers): 10,110 chunks 26.9 ms, the walk
# 32.1 ms, unrestricted 9.8 ms. On a smaller store the walk finds readable chunks sooner, so there a
# caller near the bound may be searched exactly where the walk would be quicker, both fast. 0: always
# walk (but a caller who may read nothing is answered without a search).
EXACT_MAX_READABLE_CHUNKS = 15_000
# A caller the planner expects to read more than this many times the bound walks without the probe: the
# probe reads up to the bound's documents rows, ~10 ms at 15,000 on a loaded 2-core VM, which a caller
# who may read most of the store would pay on every search for nothing. The planner's figure comes from
# the statistics of ``chunks.readers`` (the session's principals are known when it plans), so it is
# rough: the margin keeps a caller near the bound on the counted path. Stale statistics can only send a
# caller to the slower plan, never change the hits.
ESTIMATE_MARGIN = 4


# A caller's share, once counted, is reused by the same caller's searches (principals, tenant, role,
# schema, bound) on the same database for this many seconds while ``documents`` has not changed: the
# probe read 2,520 documents rows (~5 ms) of a 1% caller's ~18 ms search at 1M chunks. A load, a grant,
# a deletion or retention writes ``documents``, and PostgreSQL's statistics count it within seconds (a
# backend reports its writes when it ends, or when idle, at most ~10 s later: ``pg_stat_get_tuples_*``;
# the next search then counts afresh), so a share that grew cannot keep a caller on the exact plan over
# many chunks. The share only picks the plan: a stale one makes a
# search slower, never returns other rows. A share of nothing is never reused. 0: count every search.
SHARE_REUSE_SECONDS = 60.0
REMEMBERED_CALLERS = 1024


@dataclass(frozen=True)
class ReadableShare:
    """What the session may read, counted no further than ``limit`` + 1 document versions: the
    versions and their chunks (``chunk_count``)."""
    versions: int
    chunks: int
    limit: int
    estimated: bool = False  # the planner's estimate of the readable chunks, not a count: the probe was skipped
    reused: bool = False  # counted (or estimated) for an earlier search of the same caller

    @property
    def exact(self) -> bool:
        """Few enough readable chunks to order them all by exact distance. A version holds at least one
        chunk, so more than ``limit`` versions (the probe stopped) is more than ``limit`` chunks."""
        return self.versions <= self.limit and self.chunks <= self.limit

    def _chosen(self) -> str:
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

    def describe(self) -> str:
        """The plan chosen, as the first line of ``--explain``'s vector plan."""
        chosen = self._chosen()
        return (f"{chosen}; the share as counted by this caller's search under {SHARE_REUSE_SECONDS:g} s ago, "
                "documents unchanged since") if self.reused else chosen


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


_shares: dict[tuple[Any, ...], tuple[float, int, ReadableShare]] = {}

# Who is asking, where, and how often ``documents`` has been written (inserts, updates, deletes, as the
# cumulative statistics count them).
_CALLER = """
    SELECT current_database(), current_user, current_schema(), inet_server_addr()::text, inet_server_port(),
           current_setting('docvec.principals', true), current_setting('docvec.tenant', true),
           coalesce(pg_stat_get_tuples_inserted(t.oid) + pg_stat_get_tuples_updated(t.oid)
                    + pg_stat_get_tuples_deleted(t.oid), 0)
    FROM (SELECT to_regclass('documents') AS oid) AS t
    """


def forget_shares() -> None:
    """Count every caller's share afresh at its next search."""
    _shares.clear()


def readable_share(conn: psycopg.Connection[Any]) -> ReadableShare:
    """The session's share of the store (``counted_share``), reused for ``SHARE_REUSE_SECONDS`` by the
    same caller's searches on the same database while ``documents`` is unchanged."""
    if SHARE_REUSE_SECONDS <= 0:
        return counted_share(conn)
    with connection_guard("reading the caller"):
        row = conn.execute(_CALLER).fetchone()
    assert row is not None
    caller, writes = (conn.info.host, conn.info.port, *row[:-1], EXACT_MAX_READABLE_CHUNKS), int(row[-1])
    now = time.monotonic()
    kept = _shares.get(caller)
    if kept is not None and kept[0] > now and kept[1] == writes:
        return replace(kept[2], reused=True)
    share = counted_share(conn)
    if share.versions:
        if len(_shares) >= REMEMBERED_CALLERS:
            _shares.clear()
        _shares[caller] = (now + SHARE_REUSE_SECONDS, writes, share)
    return share


def counted_share(conn: psycopg.Connection[Any]) -> ReadableShare:
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


# The exact search orders the readable chunks in scope by distance and tests the version rules (latest
# version, not deleted) on the nearest ``POOL_FACTOR`` x k of them only: at 1% of a 1M-chunk store the rules
# over every readable version cost more than ordering the chunks themselves (benchmarks/RESULTS.md). When
# more than the pool's spare places go to superseded or deleted versions (a document edited many times,
# its unchanged chunks stored once per version), the complete statement tests every readable version.
POOL_FACTOR = 4

_COLUMNS = sql.SQL("c.chunk_id, c.doc_id, c.ingest_date, c.seq, c.text, c.metadata")


def _pooled_statement(vector: np.ndarray, scope: Scope, k: int,
                      column: VectorColumn) -> tuple[sql.Composed, dict[str, Any]]:
    days, params = chunk_search.day_conditions(scope, "c")
    chunks, values = chunk_search.chunk_conditions(scope)
    params.update(values, query=vector, pool=POOL_FACTOR * k)
    # The readable chunks in scope (the chunks policy's bitmap of their readers), each measured once, in a
    # subquery the planner may not flatten (OFFSET 0), so ordering by its distance is what no vector index
    # can answer: every one is measured. Then whether each of the nearest is its document's current
    # version, tested once per pooled chunk.
    statement = sql.SQL(
        """
        SELECT {columns}, c.distance, ({latest}) AS current
        FROM (
            SELECT {columns}, c.distance
            FROM (SELECT {columns}, c.embedding <=> {query} AS distance FROM chunks c WHERE {conditions}
                  OFFSET 0) AS c
            ORDER BY c.distance, c.chunk_id
            LIMIT %(pool)s
        ) AS c
        ORDER BY c.distance, c.chunk_id
        """
    ).format(columns=_COLUMNS, latest=sql.SQL(" AND ").join(chunk_search.latest_conditions(scope, "c")),
             conditions=sql.SQL(" AND ").join(chunks + days), query=column.query())
    return statement, params


def _complete_statement(vector: np.ndarray, scope: Scope, k: int,
                        column: VectorColumn) -> tuple[sql.Composed, dict[str, Any]]:
    versions, params = chunk_search.version_conditions(scope, "v")
    chunks, values = chunk_search.chunk_conditions(scope)
    params.update(values, query=vector, k=k)
    # The readable versions (the policy's bitmap of documents) that the version rules keep (latest, not
    # deleted, within the dates), tested once per version (MATERIALIZED: never once per chunk), then their
    # chunks by the documents key, every one measured (``+ 0``, as above).
    statement = sql.SQL(
        """
        WITH versions AS MATERIALIZED (
            SELECT v.ingest_date, v.doc_id FROM documents v WHERE {versions}
        )
        SELECT {columns}, c.embedding <=> {query} AS distance
        FROM versions v
        JOIN chunks c ON c.ingest_date = v.ingest_date AND c.doc_id = v.doc_id
        WHERE {chunks}
        ORDER BY (c.embedding <=> {query}) + 0, c.chunk_id
        LIMIT %(k)s
        """
    ).format(columns=_COLUMNS, versions=sql.SQL(" AND ").join(versions), chunks=sql.SQL(" AND ").join(chunks),
             query=column.query())
    return statement, params


def _matched(rows: list[dict[str, Any]]) -> list[MatchedChunk]:
    return [MatchedChunk(chunk_id=r["chunk_id"], doc_id=r["doc_id"], ingest_date=r["ingest_date"], seq=r["seq"],
                         text=r["text"], metadata=r["metadata"], distance=float(r["distance"])) for r in rows]


def _exact_nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
                   column: VectorColumn) -> tuple[list[MatchedChunk], bool]:
    """The ``k`` nearest readable chunks of current versions, exactly; and whether the pool held them
    (False: the complete statement answered)."""
    with connection_guard("searching"), conn.cursor(row_factory=dict_row) as cursor:
        statement, params = _pooled_statement(vector, scope, k, column)
        pooled = cursor.execute(statement, params).fetchall()
        current = [row for row in pooled if row["current"]]
        # Enough current versions among the nearest, or every readable chunk in scope was pooled: exact.
        if len(current) >= k or len(pooled) < POOL_FACTOR * k:
            return _matched(current[:k]), True
        statement, params = _complete_statement(vector, scope, k, column)
        return _matched(cursor.execute(statement, params).fetchall()), False


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
    return _exact_nearest(conn, vector, scope, k, column)[0]


def explain_nearest(conn: psycopg.Connection[Any], vector: np.ndarray, scope: Scope, k: int,
                    ann: AnnSettings) -> str:
    """The plan ``nearest`` chooses (first lines) and the EXPLAIN ANALYZE of the statement that answers."""
    share = readable_share(conn)
    if not share.versions:
        return share.describe()
    if not share.exact:
        return share.describe() + "\n" + chunk_search.explain_nearest(conn, vector, scope, k, ann)
    with connection_guard("explaining the search"):
        column = chunk_search.require_dimension(conn, vector)
    pooled = _exact_nearest(conn, vector, scope, k, column)[1]
    how = (f"docvec plan: the version rules tested on the nearest {POOL_FACTOR * k} readable chunks" if pooled else
           f"docvec plan: the nearest {POOL_FACTOR * k} readable chunks held fewer than {k} current versions, so the "
           "version rules were then tested on every readable version (both statements below)")
    statements = [_pooled_statement] if pooled else [_pooled_statement, _complete_statement]
    plans = []
    with connection_guard("explaining the search"):
        for make in statements:
            statement, params = make(vector, scope, k, column)
            rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS OFF) ") + statement, params).fetchall()
            plans.append(chunk_search.shortened_plan(r[0] for r in rows))
    return "\n".join([share.describe(), how, *plans])
