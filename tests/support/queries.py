"""Query vectors for tests that call the search SQL directly, below the search service."""

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
