"""What a search server holds for its whole life: a pool of read-only connections and the served model,
loaded once (and again only when the store starts serving another model)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from pipeline.errors import DocvecError
from pipeline.ingest.embedding import Embedder, set_encode_threads
from pipeline.query import search_model
from pipeline.settings import Settings
from pipeline.storage import db, model_registry
from pipeline.storage.model_registry import StoredModel

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

T = TypeVar("T")


class Searcher:
    def __init__(self, settings: Settings, *, pool_size: int = 8, timeout: float = 5.0, encode_threads: int = 1) -> None:
        self.pool: ConnectionPool = db.search_pool(settings, max_size=pool_size, timeout=timeout)
        self.encode_threads = encode_threads
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._served: StoredModel | None = None
        self._branches = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="docvec-branch")

    def open(self) -> None:
        self.pool.open(wait=False)

    def close(self) -> None:
        self._branches.shutdown(wait=False, cancel_futures=True)
        self.pool.close()

    def in_parallel(self, work: Callable[[psycopg.Connection[Any]], T]) -> Future[T]:
        """``work`` on a connection of its own, in a thread of its own: a hybrid search's text branch
        runs while the request's thread embeds the query and runs the vector branch (both branches cost
        about the same, so a hybrid search takes about as long as the slower one, not their sum)."""
        def run() -> T:
            with self.connection() as conn:
                return work(conn)
        return self._branches.submit(run)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection() as conn:
            yield conn

    def served(self, conn: psycopg.Connection[Any]) -> StoredModel:
        """The model the store serves now (one indexed lookup per request: a switch is seen at once)."""
        return search_model.served_model(conn)

    def embedder(self, conn: psycopg.Connection[Any], served: StoredModel) -> Embedder:
        """The served model, loaded on first use and kept; loaded anew when the store switched models."""
        with self._lock:
            if self._embedder is None or self._served is None or self._served.id != served.id:
                set_encode_threads(self.encode_threads)
                self._embedder = search_model.serving_embedder(conn)
                self._served = model_registry.serving(conn)
            return self._embedder

    def warm(self) -> None:
        """Load the served model now, so the first request does not wait for it (best effort: a store
        that is not reachable yet is loaded from on the first request instead)."""
        from psycopg_pool import PoolTimeout

        try:
            with self.connection() as conn:
                self.embedder(conn, self.served(conn))
        except (DocvecError, psycopg.Error, PoolTimeout):  # what /healthz and each request report
            return
