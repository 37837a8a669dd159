"""What index upkeep reads from a partition: a build's progress, a server setting, the recall of an
index against an exact scan, and vectors that cannot be right. (storage owns every statement on the
chunk partitions; indexing decides when to run them.)"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pipeline.storage import catalog
from pipeline.storage.vector_indexes import AnnSettings, ProgressLog, apply_ann_settings
from pipeline.storage.vector_storage import stored_column


def poll_build_progress(conninfo: str, index_relname: str, log: ProgressLog, stop: threading.Event) -> None:
    """Log pg_stat_progress_create_index every few seconds from a connection of its own, until ``stop``."""
    with psycopg.connect(conninfo, autocommit=True) as watcher:
        while not stop.wait(3.0):
            row = watcher.execute(
                """
                SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total
                FROM pg_stat_progress_create_index WHERE index_relid = to_regclass(%s) OR
                      (index_relid = 0 AND command LIKE 'CREATE INDEX%%')
                LIMIT 1
                """, (index_relname,)).fetchone()
            if row:
                phase, blocks_done, blocks_total, tuples_done, tuples_total = row
                done = (f"{tuples_done:,}/{tuples_total:,} tuples" if tuples_total
                        else f"{blocks_done:,}/{blocks_total:,} blocks")
                log(f"building {index_relname}: {phase}, {done}")


def current_setting(conn: psycopg.Connection[Any], name: str) -> str:
    """A server setting as the server shows it (``64MB``), for messages."""
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return str(row[0]) if row else "unknown"


def recall_at_k(conn: psycopg.Connection[Any], partition: str, k: int = 10, samples: int = 20,
                ann: AnnSettings | None = None, seed: float = 0.42) -> float:
    """Mean overlap of indexed top-k with exact top-k, over ``samples`` stored vectors used as queries,
    searched with ``ann`` (default: what search uses for this store, ``catalog.search_settings``)."""
    settings = ann or catalog.search_settings(conn)
    table = sql.Identifier(partition)
    with conn.transaction():
        conn.execute("SELECT setseed(%s)", (seed,))
        queries = [r[0] for r in conn.execute(
            sql.SQL("SELECT embedding FROM {} ORDER BY random() LIMIT %s").format(table), (samples,))]
    top = sql.SQL("SELECT chunk_id FROM {} ORDER BY embedding <=> %s LIMIT %s").format(table)
    overlaps = []
    for query in queries:
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")
            conn.execute("SET LOCAL enable_bitmapscan = off")
            exact = {r[0] for r in conn.execute(top, (query, k))}
        with conn.transaction():
            apply_ann_settings(conn, settings, iterative=False)
            approx = {r[0] for r in conn.execute(top, (query, k))}
        overlaps.append(len(exact & approx) / max(1, len(exact)))
    return float(np.mean(overlaps)) if overlaps else 1.0


def insane_vectors(conn: psycopg.Connection[Any], partition: str, dim: int) -> int:
    """Rows whose vector has the wrong dimension or zero length (pgvector itself refuses NaN and Inf)."""
    norm = sql.Identifier(stored_column(conn, partition).norm_function)
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE vector_dims(embedding) <> %s OR {}(embedding) = 0").format(
            sql.Identifier(partition), norm), (dim,)).fetchone()
    return int(row[0]) if row else 0
