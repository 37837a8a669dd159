"""The one place a search is run, for every face (the Python API, ``docvec search``, ``docvec eval``,
``docvec serve``): a ``SearchService`` knows where its connections come from (one connection, or a
pool) and where its model comes from (``search_model.ModelSource``), and turns a ``SearchRequest``
into a ``SearchResult``.

The sequence: identify the model whose vectors to read (never loading it: text mode needs none), run
the branches the mode asks for, fuse them (hybrid; with relative fusion each document's opening weighs
in, then the text branch is scored again with feedback terms from the first documents and fused
again: ``branches.feedback_text``), rerank the first candidates with a cross-encoder
when one is configured (``rerank.py``), else let a hybrid list's documents take turns
(``fusion.interleave``, unless ``group_by_document``), keep at most ``per_doc`` hits of each document
and the first ``k``, and add each hit's neighbouring chunks (``window``). A search ``as_of`` a day first
checks that the day's history is still kept (``refuse_lost_history``). With a pool, a hybrid
search runs its text branch on a second connection while the query is embedded and the vector branch
runs: both cost about the same, so it takes about as long as the slower branch, not their sum."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import psycopg

from pipeline.errors import ConfigError
from pipeline.ingest.embedding import Embedder
from pipeline.lexical.expansion import FEEDBACK_DOCUMENTS, FEEDBACK_TERMS
from pipeline.query import branches
from pipeline.query.fusion import LEAD, fuse, interleave, limit_per_document, with_openings
from pipeline.query.hits import SearchHit
from pipeline.query.request import SearchRequest, request
from pipeline.query.rerank import CrossEncoderReranker, from_settings
from pipeline.query.search_model import ModelSource, model_source
from pipeline.settings import load_settings
from pipeline.storage import access, history
from pipeline.storage.model_registry import StoredModel
from pipeline.storage.sqlstate import connection_guard

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool


# Seconds a hybrid search's text branch waits for a connection of its own before it runs after the vector
# branch on the request's connection instead: a full pool slows a search down, it never stalls it.
SPARE_CONNECTION_WAIT = 0.1


class ConnectionSource(Protocol):
    """Where a service's connections come from. ``parallel``: whether it can hand out a second one
    while the first is in use (a hybrid search's text branch then runs on it)."""

    parallel: bool

    def open(self) -> None:
        """Start connecting (a pool); nothing for a connection the caller holds."""
        ...

    def connection(self, timeout: float | None = None) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A connection for one search (``timeout``: seconds to wait for one, where waiting is possible)."""
        ...

    def spare(self) -> AbstractContextManager[psycopg.Connection[Any] | None]:
        """A second connection if one is free at once, else None: a branch never waits for one, since
        requests that each hold one connection and wait for another could starve each other."""
        ...

    def close(self) -> None:
        """Release what the source holds."""
        ...


class OneConnection:
    """A connection the caller opened and closes: every search runs on it, one branch after the other."""

    parallel = False

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def open(self) -> None:
        """The caller's connection is open already."""

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        yield self._conn

    @contextmanager
    def spare(self) -> Iterator[psycopg.Connection[Any] | None]:
        yield None

    def close(self) -> None:
        """The caller's connection stays open: the caller closes it."""


class PooledConnections:
    """A pool's connections (``storage.connections.search_pool``): opened and closed with the service."""

    parallel = True

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def open(self) -> None:
        self.pool.open(wait=False)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection(timeout=timeout) as conn:
            yield conn

    @contextmanager
    def spare(self) -> Iterator[psycopg.Connection[Any] | None]:
        from psycopg_pool import PoolTimeout

        try:
            conn = self.pool.getconn(timeout=SPARE_CONNECTION_WAIT)
        except PoolTimeout:
            yield None
            return
        try:
            yield conn
        finally:
            self.pool.putconn(conn)

    def close(self) -> None:
        self.pool.close()


@dataclass(frozen=True)
class SearchResult:
    """A search's hits, best first, and what produced them: the model (``name@revision``) whose vectors
    were read, the mode, the time it took, and the query plans when asked for (``explain``)."""
    hits: list[SearchHit]
    model: str
    mode: str
    took_ms: float
    plans: tuple[str, ...] = ()
    # Read-only measurements for metrics: each branch's candidates before fusion ("vector", "text"), and
    # the seconds the query's embedding took (None when none was made: text mode, a vector given).
    candidates: dict[str, int] = field(default_factory=dict)
    encode_seconds: float | None = None


class SearchService:
    """Runs searches (see the module docstring). ``parallel_text``: run a hybrid search's text branch on
    a connection of its own; on by default when the connections come from a pool. ``reranker``: the
    cross-encoder stage, by default the one the settings configure (``DOCVEC_RERANKER``; none when unset);
    False for none whatever the settings say."""

    def __init__(self, connections: ConnectionSource, model: ModelSource | None = None, *,
                 parallel_text: bool | None = None, threads: int = 8,
                 reranker: CrossEncoderReranker | bool | None = None) -> None:
        if parallel_text and not connections.parallel:
            raise ConfigError("a parallel text branch needs a second connection: give the service a pool")
        self._connections = connections
        self._model = model or model_source(None)
        self._reranker = (from_settings(load_settings()) if reranker is None or reranker is True
                          else reranker or None)
        parallel = connections.parallel if parallel_text is None else parallel_text
        self._branches = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docvec-branch") if parallel else None

    @classmethod
    def over(cls, conn: psycopg.Connection[Any], model: ModelSource | Embedder | None = None) -> SearchService:
        """Searches on one connection the caller holds; ``model`` a source, a loaded embedder, or None
        for the served model."""
        source = model if model is None or not isinstance(model, Embedder) else model_source(model)
        return cls(OneConnection(conn), source)

    @property
    def connections(self) -> ConnectionSource:
        """Where the service's connections come from (read-only: ``docvec serve``'s metrics read its pool)."""
        return self._connections

    @property
    def parallel_text(self) -> bool:
        """Whether a hybrid search runs its text branch on a connection of its own."""
        return self._branches is not None

    def open(self) -> None:
        """Start connecting (a pool opens in the background; a request waits for its connection)."""
        self._connections.open()

    def close(self) -> None:
        """Stop the branch threads and release the connections."""
        if self._branches is not None:
            self._branches.shutdown(wait=False, cancel_futures=True)
        self._connections.close()

    def identify(self, timeout: float | None = None) -> StoredModel:
        """The model a search would read now, without loading it."""
        with self._connections.connection(timeout) as conn:
            return self._model.stored(conn)

    def embedder(self) -> Embedder:
        """The model a search embeds queries with, loaded (and kept) now."""
        return self._model.embedder(self.identify())

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        """Queries embedded in one batch, for callers that search many (``vector=`` of ``search``)."""
        return self.embedder().encode(list(queries))

    def search_for(self, query: str, **options: Any) -> SearchResult:
        """``search`` of ``SearchRequest(query=query, **options)``; an invalid option is a ``ConfigError``."""
        return self.search(request(query, **options))

    def search(self, wanted: SearchRequest, *, vector: np.ndarray | None = None, explain: bool = False,
               principals: Sequence[str] | None = None, tenant: str | None = None) -> SearchResult:
        """The hits for ``wanted``. ``vector``: the query already embedded by this service's model (a
        caller searching many queries embeds them in one batch); ``explain``: also the plans of the
        branches the mode runs (``EXPLAIN ANALYZE``, the same vector); ``principals``: search as them
        (``storage/access.py``: PostgreSQL's row-level security decides every row read, on every
        connection the search uses), or None to read as the connection's own role; ``tenant`` (with
        ``principals``): also only the documents whose readers hold ``tenant:<tenant>``."""
        if tenant is not None and principals is None:
            raise ConfigError("a search in a tenant is a search as principals: give principals with the tenant")
        if not wanted.query.strip():
            raise ConfigError("the search query is empty")
        started = time.perf_counter()
        encoded: float | None = None  # seconds the query's embedding took
        candidates: dict[str, int] = {}
        with self._connections.connection() as conn, _as(conn, principals, tenant):
            refuse_lost_history(conn, wanted)
            stored = self._model.stored(conn)
            pending = self._text_elsewhere(wanted, stored.id, principals, tenant) if wanted.mode == "hybrid" else None
            try:
                if wanted.mode != "text" and vector is None:
                    embedder, encoding = self._model.embedder(stored), time.perf_counter()
                    vector, encoded = embedder.encode([wanted.query])[0], time.perf_counter() - encoding
                hits, added = self._ranked(conn, wanted, stored.id, vector, pending, principals is not None,
                                           candidates, explain)
            finally:
                if pending is not None:
                    pending.cancel()  # a no-op once it ran; if the vector branch failed first, it never starts
            hits, stage = self._ordered(wanted, hits, added)
            hits = branches.with_context(conn, limit_per_document(hits, wanted.per_document, wanted.k), wanted.window,
                                         stored.id)
            plans = (*self._plans(conn, wanted, stored.id, vector, principals is not None), stage) if explain else ()
        return SearchResult(hits=hits, model=stored.label, mode=wanted.mode, plans=plans,
                            took_ms=round((time.perf_counter() - started) * 1000, 2), candidates=candidates,
                            encode_seconds=encoded)

    def _ranked(self, conn: psycopg.Connection[Any], wanted: SearchRequest, model_id: int, vector: np.ndarray | None,
                pending: Future[list[SearchHit] | None] | None, as_principals: bool,
                counted: dict[str, int], explain: bool = False) -> tuple[list[SearchHit], list[str]]:
        """The branches' hits, fused in hybrid mode, before the per-document limit and ``k``, and (with
        ``explain``) the words the feedback added to the query; each branch's count of hits goes into
        ``counted``."""
        if wanted.mode == "text" or vector is None:
            counted["text"] = len(text_only := _text_branch(conn, wanted, model_id))
            return text_only, []
        fetched = wanted.branch_size if self._reranker is None else max(wanted.branch_size, self._reranker.candidates)
        nearest = branches.search_vector(conn, vector, model_id, k=fetched, since=wanted.since,
                                         until=wanted.until, filters=wanted.filters, ef_search=wanted.ef_search,
                                         probes=wanted.probes, as_of=wanted.as_of, as_principals=as_principals)
        counted["vector"] = len(nearest)
        if wanted.mode == "vector":
            return nearest, []
        text = pending.result() if pending is not None else None
        if text is None:  # no branch thread, or no spare connection for it
            text = _text_branch(conn, wanted, model_id)
        counted["text"] = len(text)
        fused = fuse(nearest, text, wanted.rrf_k, method=wanted.fusion, vector_weight=wanted.vector_weight)
        if wanted.fusion != "relative":
            return fused, []
        openings = branches.opening_similarities(conn, vector, fused, model_id) if wanted.opening_weight else {}
        ranked = with_openings(fused, openings, wanted.opening_weight)
        # Without text hits (no query term is stored, or none in scope) there is no text branch to refine:
        # one made of feedback terms alone would take the text branch's whole share, whatever the weight.
        if wanted.feedback_weight == 0.0 or not text:
            return ranked, []
        # The feedback scores chunks the branches found again and keeps the best, as the text branch keeps its
        # best: no document that was not a candidate comes in, so the openings already read cover them all.
        again = branches.feedback_text(conn, wanted.query, nearest, text, ranked, model_id, wanted.feedback_weight,
                                       wanted.branch_size)
        refused = fuse(nearest, again.hits, method=wanted.fusion, vector_weight=wanted.vector_weight)
        return with_openings(refused, openings, wanted.opening_weight), again.words() if explain else []

    def _ordered(self, wanted: SearchRequest, hits: list[SearchHit],
                 added: Sequence[str] = ()) -> tuple[list[SearchHit], str]:
        """The candidates in the order the list shows them, and a line saying how (for ``explain``):
        reranked by the cross-encoder when one is configured; else a hybrid list's documents take turns
        (``fusion.interleave``) unless the request groups them."""
        if self._reranker is not None:
            reranked = self._reranker.rerank(wanted.query, hits)
            picked = f" (candidates {_fusion(wanted, added)})" if wanted.mode == "hybrid" else ""
            return reranked.hits, (f"rerank: the first {reranked.scored} of {len(hits)} candidates scored by the "
                                   f"cross-encoder {self._reranker.path} in {reranked.seconds * 1000:.1f} ms{picked}")
        if wanted.mode != "hybrid":
            return hits, f"order: {wanted.mode} scores, chunk by chunk"
        if wanted.group_by_document:
            return hits, ("order: documents by fused score, each document's chunks after it (group_by_document); "
                          + _fusion(wanted, added))
        return interleave(hits), (f"order: documents by fused score, taking turns (the first document's best {LEAD} "
                                   f"chunks, then one chunk of each document per round); {_fusion(wanted, added)}")

    def _text_elsewhere(self, wanted: SearchRequest, model_id: int,
                        principals: Sequence[str] | None,
                        tenant: str | None = None) -> Future[list[SearchHit] | None] | None:
        """The text branch started on a connection and thread of its own, when the service runs it so
        (as the same principals: row-level security binds each connection)."""
        if self._branches is None:
            return None

        def run() -> list[SearchHit] | None:
            with self._connections.spare() as conn:
                if conn is None:
                    return None
                with _as(conn, principals, tenant):
                    return _text_branch(conn, wanted, model_id)
        return self._branches.submit(run)

    def _plans(self, conn: psycopg.Connection[Any], wanted: SearchRequest, model_id: int,
               vector: np.ndarray | None, as_principals: bool) -> tuple[str, ...]:
        scope: dict[str, Any] = {"k": wanted.branch_size, "since": wanted.since, "until": wanted.until,
                                 "filters": wanted.filters, "as_of": wanted.as_of}
        plans = []
        if vector is not None and wanted.mode != "text":
            plans.append(branches.explain_vector(conn, vector, model_id, ef_search=wanted.ef_search,
                                                 probes=wanted.probes, as_principals=as_principals, **scope))
        if wanted.mode != "vector":
            plans.append(branches.explain_text(conn, wanted.query, model_id, **scope))
        return tuple(plans)


def _as(conn: psycopg.Connection[Any], principals: Sequence[str] | None,
        tenant: str | None = None) -> AbstractContextManager[Any]:
    """The block as ``principals`` in ``tenant`` (``access.acting_as``), or as the connection's own role
    when None."""
    return nullcontext() if principals is None else access.acting_as(conn, principals, tenant)


def _fusion(wanted: SearchRequest, added: Sequence[str] = ()) -> str:
    """How a hybrid search scored its documents, for ``explain`` (``added``: the feedback's words)."""
    if wanted.fusion == "rrf":
        return f"fused by reciprocal ranks (rrf_k {wanted.rrf_k})"
    opening = (f", then each document's opening chunk weighed in at {wanted.opening_weight}"
               if wanted.opening_weight else ", openings not weighed in (opening_weight 0)")
    words = f" (terms added or weighed more: {', '.join(added)})" if added else ""
    feedback = (f"; then the text branch re-scored over both branches' candidates with the {FEEDBACK_TERMS} heaviest "
                f"terms of the first {FEEDBACK_DOCUMENTS} documents' best chunks added at {wanted.feedback_weight}, "
                f"and fused again{words}" if wanted.feedback_weight else "; no feedback terms (feedback_weight 0)")
    return f"fused by relative scores (vector weight {wanted.vector_weight}){opening}{feedback}"


def _text_branch(conn: psycopg.Connection[Any], wanted: SearchRequest, model_id: int) -> list[SearchHit]:
    # The branch fetches a pool (branch_size) whose first k places are what a list shows, or what decides
    # hybrid fusion: those are proven exact BM25, the rest is the best of what proving them scored
    # (branches.text_rounds). A per-document limit in text mode may reach deep into the pool: all exact.
    proven = None if wanted.mode == "text" and wanted.per_document is not None else wanted.k
    return branches.search_text(conn, wanted.query, model_id, k=wanted.branch_size, since=wanted.since,
                                until=wanted.until, filters=wanted.filters, as_of=wanted.as_of, proven=proven)


def refuse_lost_history(conn: psycopg.Connection[Any], wanted: SearchRequest) -> None:
    """A search ``as_of`` a day is answered from kept history only: a day before the retention horizon
    (``storage/history.horizon``: retention purged the versions and tombstones from before it) would be
    a partial past, and a ``since`` after ``as_of`` could match nothing: both are ``ConfigError``s."""
    if wanted.as_of is None:
        return
    if wanted.since is not None and wanted.since > wanted.as_of:
        raise ConfigError(f"since {wanted.since} is after as_of {wanted.as_of}: the store as of {wanted.as_of} "
                          f"holds nothing stored after it, so nothing could match; give a since on or before "
                          f"{wanted.as_of}, or leave since out")
    with connection_guard("reading the retention horizon"):
        kept_from = history.horizon(conn)
    if kept_from is not None and wanted.as_of < kept_from:
        raise ConfigError(f"as_of {wanted.as_of} is before the retention horizon {kept_from}: retention purged the "
                          f"history (superseded versions, deletions) older than {kept_from}, so the store can no "
                          f"longer say what it held on {wanted.as_of}; search as of {kept_from} or later, or "
                          "without as_of (--as-of) for the store as it is now")
