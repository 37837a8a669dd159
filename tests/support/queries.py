"""Query vectors for tests that call the search SQL directly, below the search service; and a recount of
the BM25 statistics from the stored chunks."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from pipeline.ingest.embedding import Embedder
from pipeline.query import search_model


def embed_query(conn: psycopg.Connection[Any], embedder: Embedder, query: str) -> tuple[np.ndarray, int]:
    """The query's vector and the id of the stored model whose vectors it may be compared with."""
    model_id = search_model.search_model_id(conn, embedder, query)
    return embedder.encode([query])[0], model_id


def term_stats_match_a_recount(conn: psycopg.Connection[Any]) -> bool:
    """``term_stats`` equals a recount of the stored chunks: each (model, day, term)'s chunk count, impact
    markers included, and each (model, day)'s chunks."""
    recount = conn.execute("""SELECT c.model_id, c.ingest_date, t, count(*) FROM chunks c, unnest(c.lexical_terms) t
                              GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").fetchall()
    stored = conn.execute("SELECT model_id, ingest_date, term, df FROM term_stats WHERE term <> -1 "  # impact markers too
                          "ORDER BY 1, 2, 3").fetchall()
    per_day = conn.execute("SELECT model_id, ingest_date, df FROM term_stats WHERE term = -1 ORDER BY 1, 2").fetchall()
    counted = conn.execute("SELECT model_id, ingest_date, count(*) FROM chunks GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    return stored == recount and per_day == counted
