"""``docvec serve``: a read-only HTTP JSON search API over the search service. ``GET /search`` (query
parameters) and ``POST /search`` (a JSON body) take every option of ``docvec search``, both derived
from ``SearchRequest``; ``GET /healthz`` says whether the database answers and which model is served;
OpenAPI at ``/openapi.json``, interactive docs at ``/docs``.

Errors are JSON ``{"detail": "..."}``, by the error's type: 422 for a request that does not validate,
400 for one the search refuses (``ConfigError``: a filter without ``=``, a blank query), 503 with
``Retry-After`` only while the database cannot be reached (``DatabaseUnavailableError``, a pool
timeout, a lost connection; the pool reconnects by itself when it is back), 500 for what an operator
must fix (``PreconditionError``: nothing served yet, the wrong model for the store; ``StoredStateError``).
There is no write path.

With ``auth`` (``pipeline/api/auth.py``): ``/search`` needs ``Authorization: Bearer <API key or token>``
and runs as the caller's principals and tenant; 401/403/429 as that module says. ``/healthz`` and the
docs stay open (they reveal no document)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from pipeline.api.auth import Authentication, Caller, Refused
from pipeline.api.metrics import install_metrics
from pipeline.api.query_parameters import from_query, query_parameters
from pipeline.api.search_page import search_page
from pipeline.api.searching import search_as
from pipeline.errors import (
    ConfigError,
    DatabaseUnavailableError,
    DocvecError,
    NothingServedError,
    PreconditionError,
    StoredStateError,
)
from pipeline.query.hits import SearchHit
from pipeline.query.request import SearchRequest
from pipeline.query.service import SearchService
from pipeline.storage.sqlstate import first_line, is_transient


def _version() -> str:
    try:
        return version("docvec")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


VERSION = _version()
RETRY_AFTER_SECONDS = 2

if TYPE_CHECKING:
    SearchQuery = BaseModel
else:
    SearchQuery = query_parameters(SearchRequest, "SearchQuery")


class Hit(BaseModel):
    rank: int
    doc_id: str
    chunk_id: str
    ingest_date: dt.date
    seq: int
    text: str
    metadata: dict[str, Any]
    score: float
    similarity: float | None = None
    text_score: float | None = None
    document_score: float | None = None
    context: list[dict[str, Any]] | None = None


class SearchResponse(BaseModel):
    query: str
    mode: str
    model: str
    took_ms: float
    hits: list[Hit]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str
    model: str | None = None
    version: str = VERSION


def _hit(hit: SearchHit) -> Hit:
    return Hit(rank=hit.rank, doc_id=hit.doc_id, chunk_id=hit.chunk_id, ingest_date=hit.ingest_date, seq=hit.seq,
               text=hit.text, metadata=hit.metadata, score=hit.score, similarity=hit.similarity,
               text_score=hit.text_score, document_score=hit.document_score, context=hit.context)


def unreachable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached now (the only case answered 503)."""
    return isinstance(exc, DatabaseUnavailableError | PoolTimeout) or (
        isinstance(exc, psycopg.Error) and is_transient(exc))


def _warm(service: SearchService) -> None:
    """Load the served model now, so the first request does not wait for it (best effort: a store that
    is not reachable or not served yet is loaded from on the first request instead)."""
    try:
        service.embedder()
    except (DocvecError, psycopg.Error, PoolTimeout):  # what /healthz and each request report
        return


def _add_error_handlers(app: FastAPI) -> None:
    """HTTP statuses by the error's type (see the module docstring); never by its message."""

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    async def failed(_request: Request, exc: Exception) -> JSONResponse:
        if unreachable(exc):
            return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                                content={"detail": f"the database is unavailable ({first_line(exc)}); retry shortly"})
        return JSONResponse(status_code=500, content={"detail": first_line(exc, "internal error")})

    async def unauthenticated(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refused)
        return JSONResponse(status_code=exc.status, headers=exc.headers, content={"detail": exc.detail})

    app.add_exception_handler(Refused, unauthenticated)
    app.add_exception_handler(ConfigError, refused)
    for error in (PreconditionError, StoredStateError, DocvecError, PoolTimeout, psycopg.Error):
        app.add_exception_handler(error, failed)


@contextmanager
def _opened(auth: Authentication | None) -> Iterator[None]:
    if auth is None:
        yield
        return
    auth.open()
    try:
        yield
    finally:
        auth.close()


def _caller(request: Request) -> Caller | None:
    """The authenticated caller (``Refused`` otherwise), or None where the server has no authentication."""
    auth: Authentication | None = request.app.state.auth
    return None if auth is None else auth.caller(request.headers.get("authorization"))


def create_app(service: SearchService, auth: Authentication | None = None) -> FastAPI:
    """The search API over ``service`` (opened when the app starts, closed when it stops); ``auth``:
    who may search, as whom (None: anyone, as the connection's own role)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.open()
        with _opened(auth):
            _warm(service)
            yield
        service.close()


    app = FastAPI(title="docvec search", version=VERSION, lifespan=lifespan,
                  description="Read-only search over a docvec store: hybrid (vector + BM25), vector or text.")
    app.state.auth = auth
    _add_error_handlers(app)
    metrics = install_metrics(app, service)  # GET /metrics (Prometheus); after the error handlers it counts
    app.include_router(search_page(service, unreachable, metrics))  # GET /: the search page for people

    def run(wanted: SearchRequest, who: Caller | None) -> SearchResponse:
        result = search_as(service, wanted, who, metrics)
        return SearchResponse(query=wanted.query, mode=result.mode, model=result.model, took_ms=result.took_ms,
                              hits=[_hit(h) for h in result.hits])

    @app.get("/search", response_model=SearchResponse, summary="Search (query parameters)")
    def search_get(params: Annotated[SearchQuery, Query()],
                   who: Annotated[Caller | None, Depends(_caller)]) -> SearchResponse:
        """Search with the options as query parameters; metadata filters as repeatable ``filter=KEY=VALUE``."""
        return run(from_query(SearchRequest, params), who)

    @app.post("/search", response_model=SearchResponse, summary="Search (JSON body)")
    def search_post(wanted: SearchRequest, who: Annotated[Caller | None, Depends(_caller)]) -> SearchResponse:
        """Search with the options as a JSON body; metadata filters as a ``filters`` object."""
        return run(wanted, who)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz() -> Any:
        """Whether the database answers, and the model search serves (null before anything is served)."""
        try:
            served: str | None = service.identify(timeout=2.0).label
        except NothingServedError:
            served = None
        except (DatabaseUnavailableError, PoolTimeout, psycopg.OperationalError) as exc:
            if not unreachable(exc):
                raise
            return JSONResponse(status_code=503,
                                content=Health(status="unavailable", database=first_line(exc)).model_dump())
        return Health(status="ok", database="ok", model=served)

    return app
