"""Which model's vectors a search reads: the served one by default, one a caller names, or the model
of an embedder a caller already loaded; never two at once. A ``ModelSource`` identifies that model
without loading it (all text mode needs) and loads it only when a query must be embedded."""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import Any, Protocol

import psycopg

from pipeline.errors import ConfigError, DimensionMismatchError, NothingServedError, PreconditionError
from pipeline.ingest.embedding import Embedder, choose_device, load_embedder, model_identity, set_encode_threads
from pipeline.storage import model_registry
from pipeline.storage.model_registry import StoredModel
from pipeline.storage.sqlstate import connection_guard, first_line

log = logging.getLogger(__name__)


def served_model(conn: psycopg.Connection[Any]) -> StoredModel:
    """The model search serves; ``NothingServedError`` saying what to do when nothing is served yet."""
    with connection_guard("looking up the served model"):
        serving = model_registry.serving(conn)
    if serving is None:
        raise NothingServedError("no embedding model is served yet: ingest first (`docvec demo` or a materialization)")
    return serving


def stored_model(conn: psycopg.Connection[Any], name: str, revision: str) -> StoredModel:
    """The stored vectors of (name, revision), which a search of them must name (a search never compares
    vectors of two models); an error naming the served model when that model stored nothing here."""
    with connection_guard("looking up the search model"):
        stored = model_registry.lookup(conn, name, revision)
        serving = None if stored else model_registry.serving(conn)
    if stored is None:
        raise ConfigError(
            f"nothing in this database was embedded with {name}@{revision}: "
            + (f"search with the served model {serving.label} (leave out --model)" if serving else
               "ingest first (`docvec demo` or a materialization)")
        )
    return stored


def stored_model_of(conn: psycopg.Connection[Any], embedder: Embedder) -> StoredModel:
    """The stored vectors a loaded embedder made: exactly its (name, revision), at its dimension."""
    with connection_guard("looking up the search model"):
        stored = model_registry.registered(conn, embedder.info)
    return stored or stored_model(conn, embedder.info.name, embedder.info.revision)


def search_model_id(conn: psycopg.Connection[Any], embedder: Embedder, query: str) -> int:
    """The id of the model whose vectors a search of ``query`` may use: exactly the embedder's."""
    if not query.strip():
        raise ConfigError("the search query is empty")
    return stored_model_of(conn, embedder).id


# How a long-running searcher encodes queries (``docvec serve --query-backend``): 'onnx' encodes queries
# for fp32 torch vectors with ONNX Runtime (the same vectors to 1e-6, recorded under the same revision:
# ~3 ms for a short query on one CPU thread against ~13 ms through sentence-transformers, whose Python
# per layer also holds the GIL that a hybrid search's text branch needs); 'auto': 'onnx' where
# onnxruntime is installed and the model runs on a CPU, else 'torch'; 'torch': the stored vectors' backend.
QUERY_BACKENDS = ("auto", "torch", "onnx")


def _require_query_backend(wanted: str) -> None:
    if wanted not in QUERY_BACKENDS:
        raise ConfigError(f"query backend {wanted!r} is not one of {', '.join(QUERY_BACKENDS)}")


def query_backend(stored: StoredModel, wanted: str) -> str:
    """The backend that encodes queries for ``stored``'s vectors (see QUERY_BACKENDS)."""
    _require_query_backend(wanted)
    if wanted == "torch" or stored.backend != "torch":  # int8 vectors need the int8 model; onnx is onnx already
        return stored.backend
    if wanted == "auto":
        import importlib.util

        if any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "onnx")) or choose_device() != "cpu":
            return stored.backend
    return "onnx"


def verified_embedder(stored: StoredModel, *, backend: str | None = None, threads: int | None = None) -> Embedder:
    """``stored``'s model, loaded locally (same headers; ``backend``: the backend to load it with, by default
    the stored vectors' own), after checking that its files are the ones that made the stored vectors (a
    backend whose vectors differ records another revision and is refused). ``threads``: an ONNX backend's."""
    embedder = load_embedder(stored.name, backend=backend or stored.backend, contextual=stored.contextual,
                             threads=threads)
    if embedder.info.revision != stored.revision:
        raise PreconditionError(
            f"search reads {stored.label}, but the local copy of {stored.name} is revision "
            f"{embedder.info.revision}: restore the files that made the stored vectors, or serve another "
            "model (`docvec model list`, `docvec model activate`)"
        )
    if embedder.info.dim != stored.dim:
        raise DimensionMismatchError(f"{stored.label} is stored as {stored.dim}-d but the local model "
                                     f"produces {embedder.info.dim}-d vectors")
    return embedder


def serving_embedder(conn: psycopg.Connection[Any]) -> Embedder:
    """The served model, loaded locally and checked against the stored vectors."""
    return verified_embedder(served_model(conn))


class ModelSource(Protocol):
    """Where a search's model comes from."""

    def stored(self, conn: psycopg.Connection[Any]) -> StoredModel:
        """The model whose stored vectors the search reads, identified without loading it."""
        ...

    def embedder(self, stored: StoredModel) -> Embedder:
        """That model loaded, to embed a query (loaded once and kept)."""
        ...


class ServedModel:
    """The model the store serves now, looked up on every search (a switch is seen at once) and loaded
    again only when it changed. ``encode_threads``: CPU threads per query encode, set on each load
    (a server's concurrent requests share the cores instead of each spreading over all of them);
    ``backend``: how queries are encoded (QUERY_BACKENDS; 'torch', the stored vectors' own, by default)."""

    def __init__(self, *, encode_threads: int | None = None, backend: str = "torch") -> None:
        _require_query_backend(backend)
        self.encode_threads = encode_threads
        self.backend = backend
        self._lock = threading.Lock()
        self._loaded: tuple[int, Embedder] | None = None

    def stored(self, conn: psycopg.Connection[Any]) -> StoredModel:
        return served_model(conn)

    def embedder(self, stored: StoredModel) -> Embedder:
        with self._lock:
            if self._loaded is None or self._loaded[0] != stored.id:
                if self.encode_threads is not None:
                    set_encode_threads(self.encode_threads)
                self._loaded = (stored.id, self._load(stored))
            return self._loaded[1]

    def _load(self, stored: StoredModel) -> Embedder:
        backend = query_backend(stored, self.backend)
        if backend == stored.backend:  # an ONNX backend's session gets the threads; torch's are process-wide
            return verified_embedder(stored, threads=self.encode_threads if backend != "torch" else None)
        try:
            return verified_embedder(stored, backend=backend, threads=self.encode_threads)
        except PreconditionError:  # the local files are not the stored vectors' model: never fall back past that
            raise
        except Exception as exc:  # e.g. a read-only home, an export ONNX Runtime cannot load
            if self.backend != "auto":
                raise
            # torch is the stored vectors' own backend, checked against their revision again below.
            log.warning("encoding queries with %s instead of ONNX Runtime: %s", stored.backend, first_line(exc))
            return verified_embedder(stored)


class NamedModel:
    """A stored model a caller names (bundled name or local path, and backend): its identity comes from
    its files, so text mode reads its rows without loading it."""

    def __init__(self, model: str, backend: str = "torch") -> None:
        self.model = model
        self.backend = backend

    @cached_property
    def identity(self) -> tuple[str, str]:
        """(name, revision) of the model's files: hashed once, not for every search."""
        return model_identity(self.model, self.backend)

    def stored(self, conn: psycopg.Connection[Any]) -> StoredModel:
        return stored_model(conn, *self.identity)

    def embedder(self, stored: StoredModel) -> Embedder:
        return load_embedder(self.model, backend=self.backend)


class GivenModel:
    """An embedder the caller already loaded: the search reads exactly its vectors."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def stored(self, conn: psycopg.Connection[Any]) -> StoredModel:
        return stored_model_of(conn, self._embedder)

    def embedder(self, stored: StoredModel) -> Embedder:
        return self._embedder


def model_source(embedder: Embedder | None) -> ModelSource:
    """The given embedder's model, or the served one when there is none."""
    return ServedModel() if embedder is None else GivenModel(embedder)
