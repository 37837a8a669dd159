"""Search from Python: ``search(conn, embedder, "query", k=10, mode="hybrid", filters={...})`` returns
the ranked ``SearchHit``s, through the same ``SearchService`` as ``docvec search`` and ``docvec serve``.
The branches it is made of (``search_vector``, ``search_text``, their plans) are here too, for callers
that measure one branch alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from pipeline.ingest.embedding import Embedder
from pipeline.query.branches import (
    ann_settings,
    explain_text,
    explain_vector,
    search_text,
    search_vector,
    vector_walk,
)
from pipeline.query.hits import SearchHit
from pipeline.query.request import MODES, request
from pipeline.query.service import SearchService

__all__ = ["MODES", "ann_settings", "explain_text", "explain_vector",
           "search", "search_text", "search_vector", "vector_walk"]


def search(conn: psycopg.Connection[Any], embedder: Embedder | None, query: str, *,
           principals: Sequence[str] | None = None, **options: Any) -> list[SearchHit]:
    """The best chunks for ``query``, searched on ``conn``. ``options`` are ``SearchRequest``'s fields
    (``k``, ``mode``, ``filters``, ``since``, ``until``, ``per_doc``, ``documents``, ``window``,
    ``fusion``, ``vector_weight``, ``opening_weight``, ``feedback_weight``, ``rrf_k``, ``candidates``,
    ``ef_search``, ``probes``) with its defaults and bounds; an invalid or unknown one is a
    ``ConfigError``. ``embedder``: the model whose vectors to read; None reads the served model's,
    loading it only when the mode embeds the query (text mode never does). ``principals``: search as
    them, PostgreSQL's row-level security deciding what may be read (``storage/access.py``); None reads
    as the connection's role."""
    return SearchService.over(conn, embedder).search(request(query, **options), principals=principals).hits
