"""Which model's vectors a search reads: the served one by default, or the one a caller names, and
never two at once. Looking it up needs no model loaded; embedding the query does."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from pipeline.errors import ConfigError, DimensionMismatchError
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.storage import model_registry
from pipeline.storage.db import connection_guard
from pipeline.storage.model_registry import StoredModel


def served_model(conn: psycopg.Connection[Any]) -> StoredModel:
    """The model search serves; an error saying what to do when nothing is served yet."""
    with connection_guard("looking up the served model"):
        serving = model_registry.serving(conn)
    if serving is None:
        raise ConfigError("no embedding model is served yet: ingest first (`docvec demo` or a materialization)")
    return serving


def stored_model_id(conn: psycopg.Connection[Any], name: str, revision: str) -> int:
    """The id of a model's stored vectors, which a search of them must name (a search never compares
    vectors of two models); an error naming the served model when that model stored nothing here."""
    with connection_guard("looking up the search model"):
        stored = model_registry.lookup(conn, name, revision)
    if stored is None:
        serving = model_registry.serving(conn)
        raise ConfigError(
            f"nothing in this database was embedded with {name}@{revision}: "
            + (f"search with the served model {serving.label} (leave out --model)" if serving else
               "ingest first (`docvec demo` or a materialization)")
        )
    return stored.id


def search_model_id(conn: psycopg.Connection[Any], embedder: Embedder, query: str) -> int:
    """The id of the model whose vectors a search of ``query`` may use: exactly the embedder's."""
    if not query.strip():
        raise ConfigError("the search query is empty")
    with connection_guard("looking up the search model"):
        stored = model_registry.registered(conn, embedder.info)
    return stored.id if stored else stored_model_id(conn, embedder.info.name, embedder.info.revision)


def serving_embedder(conn: psycopg.Connection[Any]) -> Embedder:
    """The served model, loaded locally (same backend), after checking that its files are the ones that
    made the stored vectors."""
    serving = served_model(conn)
    embedder = load_embedder(serving.name, backend=serving.backend, contextual=serving.contextual)
    if embedder.info.revision != serving.revision:
        raise ConfigError(
            f"search serves {serving.label}, but the local copy of {serving.name} is revision "
            f"{embedder.info.revision}: restore the files that made the stored vectors, or serve another "
            "model (`docvec model list`, `docvec model activate`)"
        )
    if embedder.info.dim != serving.dim:
        raise DimensionMismatchError(f"{serving.label} is stored as {serving.dim}-d but the local model "
                                     f"produces {embedder.info.dim}-d vectors")
    return embedder


def embed_query(conn: psycopg.Connection, embedder: Embedder, query: str) -> tuple[np.ndarray, int]:
    """The query's vector and the id of the model that made it."""
    model_id = search_model_id(conn, embedder, query)
    return embedder.encode([query])[0], model_id
