"""``docvec serve``'s Prometheus metrics at ``GET /metrics`` (text exposition format, ``prometheus_client``),
in a registry of each app's own (never the process-wide one: two apps in one process count apart).

- ``docvec_http_request_duration_seconds{route,method,mode,status}``: every request's latency, by its
  route template (``/search``; ``unmatched`` for a path no route serves, never the path itself), method,
  search mode (``hybrid``/``vector``/``text``; ``none`` for other routes and for a search refused before
  its options validated) and HTTP status;
- ``docvec_http_errors_total{route,type}``: errors by the exception's class name (``ConfigError``,
  ``RequestValidationError``, ``Refused``, ``PoolTimeout``…), whether a handler answered them or not;
- ``docvec_search_candidates{mode,branch}``: candidates each branch (``vector``, ``text``) found per
  search, before fusion and the per-document limit (what ``SearchResult.candidates`` reports);
- ``docvec_model_encode_seconds``: the time a search took to embed its query;
- ``docvec_pool_*``: the search connection pool (``psycopg_pool``'s ``get_stats()``, read at each scrape):
  connections open, idle and allowed, requests waiting now, and counters of requests, of those that
  queued, of the seconds they waited, of those that timed out, and of connections lost.

No label carries a query, a filter, a key, a token, a principal or any document text: labels take
only route templates, a fixed set of methods and modes, status codes and exception class names.

Authentication: ``/metrics`` answers anyone when the server has none (then it serves loopback only,
unless ``--allow-anyone-to-search``); with ``--auth`` it needs the same ``Authorization: Bearer`` as
``/search`` (an API key or token; a key bound to a principal that reads nothing will do), so a
server reachable from elsewhere shows nothing about its traffic to strangers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from pipeline.api.auth import Authentication
    from pipeline.query.service import SearchResult, SearchService

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Request, Exception], Any]

METRICS_PATH = "/metrics"
METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
MODES = frozenset({"hybrid", "vector", "text"})
NO_MODE = "none"
UNMATCHED = "unmatched"
CANDIDATE_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 200, 500, 1000, 2000)
ENCODE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class _Noted:
    """What one request's handling told the metrics (shared with the threads the request runs on)."""
    mode: str = NO_MODE
    error: str | None = None


_REQUEST: ContextVar[_Noted | None] = ContextVar("docvec_metrics_request", default=None)


def route_of(scope: Scope) -> str:
    """The route template a request matched (never its path: a path can carry anything)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class ServeMetrics:
    """The metrics of one app: its registry, and what its requests and searches report."""

    def __init__(self, service: SearchService | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram("docvec_http_request_duration_seconds", "Seconds from request to response",
                                  ["route", "method", "mode", "status"], registry=self.registry)
        self.errors = Counter("docvec_http_errors", "Errors by the exception's class name",
                              ["route", "type"], registry=self.registry)
        self.candidates = Histogram("docvec_search_candidates", "Candidates a search branch found, before fusion",
                                    ["mode", "branch"], buckets=CANDIDATE_BUCKETS, registry=self.registry)
        self.encode = Histogram("docvec_model_encode_seconds", "Seconds to embed a search's query",
                                buckets=ENCODE_BUCKETS, registry=self.registry)
        if service is not None:
            self.registry.register(PoolCollector(service))

    def searching(self, mode: str) -> None:
        """The request being handled runs a search in ``mode`` (its latency is labelled with it)."""
        noted = _REQUEST.get()
        if noted is not None and mode in MODES:
            noted.mode = mode

    def searched(self, result: SearchResult) -> None:
        """What a search measured: each branch's candidates, the query's encode time."""
        mode = result.mode if result.mode in MODES else NO_MODE
        for branch, count in result.candidates.items():
            self.candidates.labels(mode=mode, branch=branch).observe(count)
        if result.encode_seconds is not None:
            self.encode.observe(result.encode_seconds)

    def failed(self, scope: Scope, exc: BaseException) -> None:
        """An error of the request's (counted once, however many layers see it)."""
        noted = _REQUEST.get()
        if noted is not None:
            if noted.error is not None:
                return
            noted.error = type(exc).__name__
        self.errors.labels(route=route_of(scope), type=type(exc).__name__).inc()

    def responded(self, scope: Scope, noted: _Noted, status: int, seconds: float) -> None:
        method = str(scope.get("method", "")).upper()
        self.requests.labels(route=route_of(scope), method=method if method in METHODS else "other",
                             mode=noted.mode, status=str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class PoolCollector(Collector):
    """The search service's connection pool, read at each scrape (nothing when it has no pool)."""

    GAUGES = (("pool_size", "docvec_pool_connections", "Connections the pool holds, in use or idle"),
              ("pool_available", "docvec_pool_connections_idle", "Idle connections ready to hand out"),
              ("pool_max", "docvec_pool_connections_max", "Connections the pool may open"),
              ("requests_waiting", "docvec_pool_requests_waiting", "Requests waiting for a connection now"))
    COUNTERS = (("requests_num", "docvec_pool_requests", "Connections asked of the pool", 1),
                ("requests_queued", "docvec_pool_requests_queued", "Requests that had to wait for a connection", 1),
                ("requests_wait_ms", "docvec_pool_requests_wait_seconds", "Seconds requests waited", 1000),
                ("requests_errors", "docvec_pool_requests_errors", "Requests that got no connection in time", 1),
                ("usage_ms", "docvec_pool_usage_seconds", "Seconds connections were in use", 1000),
                ("connections_lost", "docvec_pool_connections_lost", "Connections found broken", 1))

    def __init__(self, service: SearchService) -> None:
        self._service = service

    def _stats(self) -> dict[str, int] | None:
        pool = getattr(self._service.connections, "pool", None)
        get_stats = getattr(pool, "get_stats", None)
        return dict(get_stats()) if callable(get_stats) else None

    def collect(self) -> Iterable[Metric]:
        stats = self._stats()
        if stats is None:
            return
        for key, name, doc in self.GAUGES:
            yield GaugeMetricFamily(name, doc, value=stats.get(key, 0))
        for key, name, doc, per_unit in self.COUNTERS:
            yield CounterMetricFamily(name, doc, value=stats.get(key, 0) / per_unit)

    def describe(self) -> Iterable[Metric]:
        return iter(())  # names are known only by collecting; nothing here can collide


class _Measured:
    """ASGI middleware: each HTTP request's latency by route, method, mode and status; an error no
    handler answered counted by its type (then re-raised: the server answers 500 as before)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        noted, status, started = _Noted(), [500], time.perf_counter()
        token = _REQUEST.set(noted)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)
        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            self.metrics.failed(scope, exc)
            raise
        finally:
            _REQUEST.reset(token)
            if route_of(scope) != METRICS_PATH:
                self.metrics.responded(scope, noted, status[0], time.perf_counter() - started)


def _counted(handler: Handler, metrics: ServeMetrics) -> Handler:
    async def counting(request: Request, exc: Exception) -> Any:
        metrics.failed(request.scope, exc)
        answer = handler(request, exc)
        return await answer if isinstance(answer, Awaitable) else answer
    return counting


def install_metrics(app: FastAPI, service: SearchService | None = None) -> ServeMetrics:
    """``GET /metrics`` on ``app`` and the measuring of its requests; call it after the app's error
    handlers are added (each is wrapped to count the errors it answers). Returns the metrics, which
    the search handlers tell about each search (``searching``, ``searched``)."""
    metrics = ServeMetrics(service)
    for kind, handler in list(app.exception_handlers.items()):
        if kind not in (500, Exception):  # those answer outside the middleware, which counts them itself
            app.exception_handlers[kind] = _counted(handler, metrics)
    app.add_middleware(_Measured, metrics=metrics)
    app.state.metrics = metrics

    @app.get(METRICS_PATH, include_in_schema=False)
    def exposition(request: Request) -> Response:
        """Prometheus metrics (text format); with authentication on, for callers with a key or token."""
        auth: Authentication | None = request.app.state.auth
        if auth is not None:
            auth.caller(request.headers.get("authorization"))
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics
