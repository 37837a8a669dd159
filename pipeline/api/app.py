"""``docvec serve``: a read-only HTTP JSON search API. ``GET /search`` (query parameters) and ``POST
/search`` (a JSON body) take every option of ``docvec search``; ``GET /healthz`` says whether the
database answers and which model is served; OpenAPI at ``/openapi.json``, interactive docs at ``/docs``.

Errors are JSON ``{"detail": "..."}``: 422 for a request that does not validate, 400 for one the
search refuses (an unknown filter form, an empty query), 503 while the database cannot be reached
(the pool reconnects by itself when it is back), 500 for a server-side misconfiguration such as a
missing model. There is no write path."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

import psycopg
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field

from pipeline.api.searcher import Searcher
from pipeline.errors import ConfigError, DatabaseSetupError, DatabaseUnavailableError, DimensionMismatchError
from pipeline.query import search
from pipeline.query.fusion import VECTOR_WEIGHT
from pipeline.query.hits import SearchHit


def _version() -> str:
    try:
        return version("docvec")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


VERSION = _version()


class SearchOptions(BaseModel):
    """Every option of ``docvec search`` but its metadata filters, with the bounds both routes check."""
    q: str = Field(min_length=1, max_length=2000, description="the query")
    k: int = Field(default=10, ge=1, le=100, description="results")
    mode: Literal["vector", "text", "hybrid"] = Field(default="hybrid", description="vector, text (BM25) or hybrid")
    since: dt.date | None = Field(default=None, description="only ingest days on or after this date")
    until: dt.date | None = Field(default=None, description="only ingest days on or before this date")
    per_doc: int | None = Field(default=None, ge=1, description="at most this many results per document")
    documents: bool = Field(default=False, description="rank documents: each one's best chunk and its score")
    window: int = Field(default=0, ge=0, le=10, description="neighbouring chunks returned on each side")
    fusion: Literal["relative", "rrf"] = Field(default="relative", description="hybrid: how branches combine")
    vector_weight: float = Field(default=VECTOR_WEIGHT, ge=0, le=1, description="relative fusion: vector share")
    rrf_k: int = Field(default=60, ge=1, description="rrf fusion constant")
    ef_search: int | None = Field(default=None, ge=1, le=1000, description="HNSW candidates (default: as built)")
    probes: int | None = Field(default=None, ge=1, description="IVFFlat lists (default: as built)")


class SearchRequest(SearchOptions):
    """A search, as ``docvec search`` takes it (``POST /search``: a JSON body)."""
    filters: dict[str, str] = Field(default_factory=dict, description="metadata that must match, e.g. {\"topic\": \"db\"}")


class SearchQuery(SearchOptions):
    """The same search as query parameters (``GET /search``): filters as repeatable ``KEY=VALUE``."""
    filter: list[str] = Field(default_factory=list, description="KEY=VALUE, repeatable")


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


def _reason(exc: Exception) -> str:
    """The first line of a connection error: what the server or the pool said, without its context."""
    return (str(exc).strip().splitlines() or ["no connection"])[0]


def _hit(hit: SearchHit) -> Hit:
    return Hit(rank=hit.rank, doc_id=hit.doc_id, chunk_id=hit.chunk_id, ingest_date=hit.ingest_date, seq=hit.seq,
               text=hit.text, metadata=hit.metadata, score=hit.score, similarity=hit.similarity,
               text_score=hit.text_score, document_score=hit.document_score, context=hit.context)


def create_app(searcher: Searcher) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        searcher.open()
        searcher.warm()
        yield
        searcher.close()

    app = FastAPI(title="docvec search", version=VERSION, lifespan=lifespan,
                  description="Read-only search over a docvec store: hybrid (vector + BM25), vector or text.")

    @app.exception_handler(ConfigError)
    async def refused(_request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(DimensionMismatchError)
    async def mismatched(_request: Request, exc: DimensionMismatchError) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, headers={"Retry-After": "2"},
                            content={"detail": f"the database is unavailable ({_reason(exc)}); retry shortly"})

    for error in (PoolTimeout, psycopg.OperationalError, DatabaseUnavailableError, DatabaseSetupError):
        app.add_exception_handler(error, unavailable)

    def run(request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        tuning = search.SearchTuning(ef_search=request.ef_search, probes=request.probes, rrf_k=request.rrf_k,
                                     fusion=request.fusion, vector_weight=request.vector_weight)
        per_doc = 1 if request.documents else request.per_doc
        with searcher.connection() as conn:
            served = searcher.served(conn)
            text_hits = None
            if request.mode == "hybrid":
                pool = search.candidate_count(request.k, request.mode, per_doc, tuning)
                branch = searcher.in_parallel(lambda text_conn: search.search_text(
                    text_conn, request.q, served.id, k=pool, since=request.since, until=request.until,
                    filters=request.filters))
                text_hits = branch.result
            vector = None if request.mode == "text" else searcher.embedder(conn, served).encode([request.q])[0]
            hits = search.search_embedded(conn, request.q, vector, served.id, k=request.k, since=request.since,
                                          until=request.until, filters=request.filters, tuning=tuning,
                                          mode=request.mode, per_doc=per_doc, window=request.window,
                                          text_hits=text_hits)
        return SearchResponse(query=request.q, mode=request.mode, model=served.label, hits=[_hit(h) for h in hits],
                              took_ms=round((time.perf_counter() - started) * 1000, 2))

    @app.get("/search", response_model=SearchResponse, summary="Search (query parameters)")
    def search_get(params: Annotated[SearchQuery, Query()]) -> SearchResponse:
        return run(SearchRequest(**params.model_dump(exclude={"filter"}), filters=search.parse_filters(params.filter)))

    @app.post("/search", response_model=SearchResponse, summary="Search (JSON body)")
    def search_post(request: SearchRequest) -> SearchResponse:
        return run(request)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz() -> Any:
        try:
            with searcher.pool.connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
                served = searcher.served(conn)
        except (PoolTimeout, psycopg.Error, DatabaseUnavailableError) as exc:
            return JSONResponse(status_code=503,
                                content=Health(status="unavailable", database=_reason(exc)).model_dump())
        except ConfigError as exc:  # reachable, but nothing is served yet
            return Health(status="ok", database="ok", model=None if "no embedding model" in str(exc) else str(exc))
        return Health(status="ok", database="ok", model=served.label)

    return app
