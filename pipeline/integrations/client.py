"""One small docvec search client, shared by the LangChain and LlamaIndex retrievers: a search either
over HTTP against ``docvec serve`` (``base_url``, an API key or token, httpx's sync and async clients) or
in process against the store (``SearchService``, the one search path every face runs; async through a
thread). Either way it returns docvec's own ``SearchHit``s, in docvec's order, and ``hit_metadata``
says what each framework's document or node carries.

Options are ``SearchRequest``'s fields (``k``, ``mode``, ``filters``, ``since``, ``until``, ``as_of``,
``per_doc``, ``window``, ...), validated when the client is made: an invalid one is a ``ConfigError``
before anything is searched. Over HTTP, the key decides whom a search runs as; in process, ``principals``
(and ``tenant``) do, as in ``SearchService.search``.

Errors from the server are typed by what the caller can do, and each names the server, the status and
the server's detail (never the key): ``SearchRefusedError`` (a ``ConfigError``: a bad key, option or base
URL), ``SearchUnavailableError`` (a ``TransientError``: unreachable, timed out, 503, 429), else
``SearchServerError`` (the server failed: its operator must act)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

import httpx

from pipeline.errors import ConfigError, DocvecError, TransientError
from pipeline.ingest.embedding import Embedder
from pipeline.query.hits import SearchHit
from pipeline.query.request import SearchRequest, request
from pipeline.query.search_model import ServedModel, model_source
from pipeline.query.service import PooledConnections, SearchService
from pipeline.settings import Settings, load_settings
from pipeline.storage import connections

DEFAULT_TIMEOUT = 30.0
# What a retriever's caller should not pass on to a model prompt or an embedding: ids and scores (the
# document's id and day stay: a model can cite them).
NOT_FOR_MODELS = ("chunk_id", "seq", "rank", "score", "similarity", "text_score", "document_score", "context")


class SearchServerError(DocvecError):
    """``docvec serve`` answered with an error or not at all: ``status`` (None when nothing answered) and
    the server's ``detail``. Used as is when the server failed (5xx): its operator must act."""

    def __init__(self, message: str, *, status: int | None, detail: str) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


class SearchRefusedError(SearchServerError, ConfigError):
    """The server refused the request (400, 401, 403, 404, 422): the key, an option or the base URL must change."""


class SearchUnavailableError(SearchServerError, TransientError):
    """Nothing answered, or not in time, or the server says to retry (429, 502-504): retrying may succeed."""


_FIXES = {
    400: "change the search it names",
    401: "give a valid API key or token (api_key=...; `docvec keys create` makes one)",
    403: "the key was revoked: ask for a new one (`docvec keys create`)",
    404: "base_url must be the root `docvec serve` answers on (it serves /search and /healthz)",
    405: "base_url must be the root `docvec serve` answers on (it serves /search and /healthz)",
    422: "change the option it names",
    429: "the key is over its rate limit: retry after the seconds the server gives (Retry-After)",
    503: "the server's database is unavailable: retry shortly",
}


def hit_metadata(hit: SearchHit) -> dict[str, Any]:
    """What a retrieved document or node carries: the chunk's own metadata (title, section, page and
    the rest, where present), then docvec's: doc_id, chunk_id, seq, day (ISO), rank, score (what the
    mode ranks by), similarity (vector), text_score (BM25; each None when that branch did not find
    the chunk), and document_score (hybrid) and context (neighbouring chunks) when the search gave them.
    docvec's keys win over a chunk's own metadata of the same name."""
    metadata = dict(hit.metadata)
    metadata.update(doc_id=hit.doc_id, chunk_id=hit.chunk_id, seq=hit.seq, day=hit.ingest_date.isoformat(),
                    rank=hit.rank, score=hit.score, similarity=hit.similarity, text_score=hit.text_score)
    if hit.document_score is not None:
        metadata["document_score"] = hit.document_score
    if hit.context:
        metadata["context"] = hit.context
    return metadata


def validated_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``SearchRequest`` now (a ``ConfigError`` naming each bad one), with
    the ones given as None left out (the search's defaults apply)."""
    given = {name: value for name, value in options.items() if value is not None}
    if "query" in given or "q" in given:
        raise ConfigError("the query is what a retriever is called with, not one of its options: leave out query")
    request("options check", **given)
    return given


class InProcessSearch:
    """Searches on the store itself through ``SearchService`` (a small pool of search connections, opened
    on the first search and closed by ``close``). ``embedder``: a model already loaded (its stored vectors
    are read); None: the served model, loaded on the first search that embeds a query."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None,
                 principals: Sequence[str] | None = None, tenant: str | None = None, pool_size: int = 4) -> None:
        if tenant is not None and principals is None:
            raise ConfigError("tenant= is a search as principals: give principals= with it (in-process search)")
        self.settings = settings
        self.principals = None if principals is None else tuple(principals)
        self.tenant = tenant
        self._embedder, self._pool_size = embedder, pool_size
        self._service: SearchService | None = None
        self._lock = threading.Lock()

    def _opened(self) -> SearchService:
        with self._lock:
            if self._service is None:
                pool = connections.search_pool(self.settings, max_size=max(2, self._pool_size))
                model = ServedModel() if self._embedder is None else model_source(self._embedder)
                self._service = SearchService(PooledConnections(pool), model)
                self._service.open()
            return self._service

    def search(self, wanted: SearchRequest) -> list[SearchHit]:
        return self._opened().search(wanted, principals=self.principals, tenant=self.tenant).hits

    async def asearch(self, wanted: SearchRequest) -> list[SearchHit]:
        return await asyncio.to_thread(self.search, wanted)

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
                self._service = None


class HttpSearch:
    """Searches through ``docvec serve`` at ``base_url`` (``POST /search``), with ``api_key`` (an API key
    or a bearer token) when the server needs one; ``timeout`` seconds per request."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            url = httpx.URL(base_url.rstrip("/"))
        except (httpx.InvalidURL, TypeError) as exc:
            raise ConfigError(f"base_url {base_url!r} is not a URL: give docvec serve's root, "
                              "e.g. http://127.0.0.1:8000") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"base_url {base_url!r} is not an http(s) URL with a host: give docvec serve's "
                              "root, e.g. http://127.0.0.1:8000")
        self.base_url = str(url.copy_with(username=None, password=None))  # what messages name
        self._url = str(url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpSearch({self.base_url!r}, api_key={'***' if self._headers else None}, timeout={self._timeout})"

    def _body(self, wanted: SearchRequest) -> dict[str, Any]:
        return wanted.model_dump(mode="json", by_alias=True, exclude_none=True)

    def search(self, wanted: SearchRequest) -> list[SearchHit]:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(base_url=self._url, headers=self._headers, timeout=self._timeout)
            client = self._client
        try:
            response = client.post("/search", json=self._body(wanted))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return self._hits(response)

    async def asearch(self, wanted: SearchRequest) -> list[SearchHit]:
        # One async client per call: an httpx.AsyncClient belongs to the event loop it first ran on.
        async with httpx.AsyncClient(base_url=self._url, headers=self._headers, timeout=self._timeout) as client:
            try:
                response = await client.post("/search", json=self._body(wanted))
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
        return self._hits(response)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _unreachable(self, exc: httpx.TransportError) -> SearchUnavailableError:
        what = f"did not answer within {self._timeout} s" if isinstance(exc, httpx.TimeoutException) else \
            f"cannot be reached ({type(exc).__name__}: {exc})"
        return SearchUnavailableError(f"docvec serve at {self.base_url} {what}: check base_url and that "
                                      "`docvec serve` runs there", status=None, detail=str(exc))

    def _hits(self, response: httpx.Response) -> list[SearchHit]:
        if response.status_code != 200:
            raise self._error(response)
        try:
            return [_hit(h) for h in response.json()["hits"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise SearchServerError(f"{self.base_url}/search answered 200 but not with docvec serve's JSON "
                                    f"({type(exc).__name__}: {exc}): is base_url a docvec serve?",
                                    status=200, detail=response.text[:200]) from exc

    def _error(self, response: httpx.Response) -> SearchServerError:
        status = response.status_code
        detail = _detail(response)
        fix = _FIXES.get(status, "the server failed: its log says why (its operator must act)")
        message = f"docvec serve at {self.base_url} answered {status} {response.reason_phrase}: {detail}; {fix}"
        if status in (429, 502, 503, 504):
            return SearchUnavailableError(message, status=status, detail=detail)
        if 400 <= status < 500:
            return SearchRefusedError(message, status=status, detail=detail)
        return SearchServerError(message, status=status, detail=detail)


def _detail(response: httpx.Response) -> str:
    """The server's ``detail`` (a string, or FastAPI's list of validation errors), else its body's start."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "(no body)"
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" if isinstance(e, dict)
                         else str(e) for e in detail)
    return str(detail)


def _hit(row: dict[str, Any]) -> SearchHit:
    return SearchHit(rank=row["rank"], similarity=row.get("similarity"), doc_id=row["doc_id"],
                     ingest_date=dt.date.fromisoformat(row["ingest_date"]), seq=row["seq"], chunk_id=row["chunk_id"],
                     text=row["text"], metadata=row.get("metadata") or {}, text_score=row.get("text_score"),
                     score=row["score"], context=row.get("context"), document_score=row.get("document_score"))


class DocvecSearch:
    """Where searches go and with which options: over HTTP when ``base_url`` is given (with ``api_key``,
    ``timeout``), else in process on ``settings`` (or ``database_url``; neither: the environment's
    ``DATABASE_URL``/``DOCVEC_HOME``), as ``principals`` in ``tenant`` when given, with ``embedder``
    when a model is loaded already. ``options``: ``SearchRequest``'s fields, the same for every search."""

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 settings: Settings | None = None, database_url: str | None = None, embedder: Embedder | None = None,
                 principals: Sequence[str] | None = None, tenant: str | None = None, **options: Any) -> None:
        self.options = validated_options(options)
        self.backend: HttpSearch | InProcessSearch
        if base_url is not None:
            local = [name for name, value in (("settings", settings), ("database_url", database_url),
                                              ("embedder", embedder), ("principals", principals),
                                              ("tenant", tenant)) if value is not None]
            if local:
                raise ConfigError(f"{', '.join(local)} are for in-process search, but base_url {base_url!r} "
                                  "searches over HTTP, where the API key decides whom the search runs as: "
                                  "give base_url (and api_key) or the in-process options, not both")
            self.backend = HttpSearch(base_url, api_key=api_key, timeout=timeout)
            return
        if api_key is not None:
            raise ConfigError("api_key is for searches over HTTP: give base_url (docvec serve's root) with it, or "
                              "principals= for an in-process search")
        if settings is not None and database_url is not None:
            raise ConfigError("give settings or database_url for an in-process search, not both")
        store = settings or load_settings(database_url=database_url)
        self.backend = InProcessSearch(store, embedder=embedder, principals=principals, tenant=tenant)

    def __repr__(self) -> str:
        return f"DocvecSearch({self.backend!r}, options={self.options!r})"

    def request(self, query: str) -> SearchRequest:
        """``query`` with this client's options (a ``ConfigError`` for a blank query)."""
        if not query.strip():
            raise ConfigError("the search query is empty: give the retriever a question")
        return request(query, **self.options)

    def search(self, query: str) -> list[SearchHit]:
        """The hits for ``query``, best first, as docvec ranks them."""
        return self.backend.search(self.request(query))

    async def asearch(self, query: str) -> list[SearchHit]:
        """``search`` without blocking the event loop (httpx's async client, or a thread in process)."""
        return await self.backend.asearch(self.request(query))

    def close(self) -> None:
        """Release the HTTP client or the in-process connection pool (searching again reopens them)."""
        self.backend.close()
