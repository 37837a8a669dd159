"""The search page of ``docvec serve``: ``GET /`` renders a query box, the mode, filters and days, and the
results ranked and grouped by document (``page_render.py``), server-side, through the same
``SearchService`` and ``SearchRequest`` as ``/search``. The query and its options live in the URL
(``/?q=…&mode=…&filter=key=value&since=…``), so a result page can be bookmarked and shared;
``&context=<chunk_id>`` shows one hit between its neighbouring chunks (the same search, with a ``window``).
Read-only: the only POSTs sign a browser in and out.

Authentication (when the server has it): the page takes the same API keys and tokens as ``/search``. A
browser signs in once through a form (``POST /session``): the credential is checked as ``/search`` checks
it, then kept in a cookie that is HttpOnly (no script reads it), SameSite=Strict (no other site's page
sends it) and Secure when served over HTTPS; never in a URL. ``POST /session/end`` forgets it. A POST
from another origin is refused (403). ``Authorization: Bearer`` works on the page too (a proxy, curl);
``/search`` itself never reads the cookie.

Errors are shown on the page with the status ``/search`` would give: 400 for a request the search refuses
or that does not validate, 401/403/429 from authentication, 404 for a context link whose chunk is no longer
among the results, 503 (``Retry-After``) while the database is unreachable, 500 otherwise. Every page
response carries ``Content-Security-Policy: default-src 'self'`` (no inline script, nothing from another
origin), ``X-Content-Type-Options: nosniff``, no framing and no caching."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool

from pipeline.api import page_render
from pipeline.api.auth import Authentication, Caller, Refused
from pipeline.api.metrics import ServeMetrics
from pipeline.api.page_render import PageQuery
from pipeline.api.searching import search_as
from pipeline.errors import ConfigError, DocvecError
from pipeline.query.hits import SearchHit
from pipeline.query.request import SearchRequest, parse_pairs, validated
from pipeline.query.service import SearchService
from pipeline.storage.sqlstate import first_line

COOKIE = "docvec_credential"
CONTEXT_WINDOW = 2  # chunks shown before and after a hit on its context page
PAGE_K, PAGE_PER_DOC = 10, 3  # the page's defaults: 10 hits, at most 3 of one document (the URL may say otherwise)
RETRY_AFTER_SECONDS = 2
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
STATIC = {"search.css": "text/css; charset=utf-8", "search.js": "text/javascript; charset=utf-8"}
# The URL parameters the form shows; any other SearchRequest option in the URL rides along as a hidden field.
_FORM_FIELDS = {"q", "query", "mode", "filter", "filters", "since", "until", "context"}


def _page(body: str, title: str, status: int = 200, headers: dict[str, str] | None = None, *,
          signed_in: bool = False) -> HTMLResponse:
    return HTMLResponse(page_render.page(title, body, signed_in=signed_in), status_code=status,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", **(headers or {})})


def asked_of(request: Request) -> PageQuery:
    """The page's query and options from its URL (empty parameters, as a form sends them, left out)."""
    params = request.query_params
    extra = {k: v for k, v in params.items() if k in SearchRequest.model_fields and k not in _FORM_FIELDS and v}
    return PageQuery(q=params.get("q", ""), mode=params.get("mode") or "hybrid",
                     filters=tuple(f for f in params.getlist("filter") if f.strip()),
                     since=params.get("since", ""), until=params.get("until", ""), extra=extra,
                     context=params.get("context", ""))


def wanted_of(asked: PageQuery) -> SearchRequest:
    """The search the page asks for; a bad option is a ``ConfigError`` naming it."""
    values: dict[str, Any] = {"k": PAGE_K, "per_doc": PAGE_PER_DOC, **asked.extra, "query": asked.q,
                              "mode": asked.mode, "filters": parse_pairs(asked.filters)}
    values.update((day, value) for day, value in (("since", asked.since), ("until", asked.until)) if value)
    if asked.context:
        values["window"] = CONTEXT_WINDOW
    return validated(SearchRequest, values)


def _next_url(raw: str) -> str:
    """Where to go after signing in: a path on this server only (never another host: no open redirect)."""
    parts = urlsplit(raw)
    if not raw.startswith("/") or raw.startswith("//") or parts.scheme or parts.netloc or "\\" in raw:
        return "/"
    return raw


def _same_origin(request: Request) -> bool:
    """Whether a POST comes from this server's own pages (its Origin, when the browser sends one)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    here = urlsplit(str(request.base_url))
    return origin.rstrip("/") == f"{here.scheme}://{here.netloc}"


class SearchPage:
    """The page's routes over ``service``; ``unreachable`` tells a database that cannot be reached now
    (503) from an error an operator must fix (500), as ``/search`` does."""

    def __init__(self, service: SearchService, unreachable: Callable[[BaseException], bool],
                 metrics: ServeMetrics) -> None:
        self.service = service
        self.unreachable = unreachable
        self.metrics = metrics

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/", self.show, methods=["GET"], response_class=HTMLResponse)
        router.add_api_route("/static/{name}", self.static, methods=["GET"])
        router.add_api_route("/session", self.sign_in, methods=["POST"])
        router.add_api_route("/session/end", self.sign_out, methods=["POST"])
        return router

    def show(self, request: Request) -> Response:
        """``GET /``: the form, and the results (or one hit's context) when the URL has a query."""
        asked = asked_of(request)
        title = f"{asked.q} · docvec search" if asked.q else "docvec search"
        form = page_render.search_form(asked)
        signed_in = request.app.state.auth is not None and COOKIE in request.cookies
        try:
            who = self._caller(request)
            body = self._answer(asked, who) if asked.q.strip() else ""
        except Refused as exc:
            retry = f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
            again = exc.status in (401, 403)  # no credential, a bad or revoked one: sign in (again); 429: wait
            shown = page_render.sign_in(retry, exc.detail) if again else page_render.message(exc.detail)
            response = _page(shown, title, exc.status, exc.headers)
            if again and COOKIE in request.cookies:  # an expired token, a revoked key: forget it
                response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
            return response
        except ChunkGone as exc:
            return _page(form + page_render.message(str(exc)), title, 404, signed_in=signed_in)
        except ConfigError as exc:
            return _page(form + page_render.message(str(exc)), title, 400, signed_in=signed_in)
        except (DocvecError, PoolTimeout, psycopg.Error) as exc:
            return self._failed(form, title, exc, signed_in)
        return _page(form + body, title, signed_in=signed_in)

    def _caller(self, request: Request) -> Caller | None:
        """The authenticated caller (``Refused`` otherwise), or None where the server has no authentication:
        the Authorization header as ``/search`` reads it, else the signed-in browser's cookie."""
        auth: Authentication | None = request.app.state.auth
        if auth is None:
            return None
        header = request.headers.get("authorization")
        cookie = request.cookies.get(COOKIE)
        if header is None and cookie is not None:
            header = f"Bearer {cookie}"
        return auth.caller(header)

    def _answer(self, asked: PageQuery, who: Caller | None) -> str:
        result = search_as(self.service, wanted_of(asked), who, self.metrics)
        if not asked.context:
            return page_render.results(result.hits, asked, model=result.model, took_ms=result.took_ms)
        return page_render.context(_found(result.hits, asked.context), asked)

    def _failed(self, form: str, title: str, exc: BaseException, signed_in: bool) -> Response:
        if self.unreachable(exc):
            return _page(form + page_render.message(
                f"The database is unavailable ({first_line(exc)}): retry in a few seconds."), title, 503,
                {"Retry-After": str(RETRY_AFTER_SECONDS)}, signed_in=signed_in)
        return _page(form + page_render.message(first_line(exc, "internal error")), title, 500, signed_in=signed_in)

    def static(self, name: str) -> Response:
        """The page's own stylesheet and script (package data, ``pipeline/api/static``)."""
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        data = (files("pipeline.api") / "static" / name).read_bytes()
        return Response(data, media_type=STATIC[name], headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"})

    async def sign_in(self, request: Request) -> Response:
        """``POST /session`` (a form: ``credential``, ``next``): check the credential as ``/search`` would, then
        keep it in the HttpOnly, SameSite=Strict cookie and go back to the page it was asked from."""
        if not _same_origin(request):
            return _page(page_render.message("Refused: this sign-in form was sent from another site."),
                         "docvec search", 403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        credential = _first(form.get("credential")).strip()
        next_url = _next_url(_first(form.get("next")) or "/")
        auth: Authentication | None = request.app.state.auth
        if auth is None:
            return RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
        try:
            await run_in_threadpool(auth.caller, f"Bearer {credential}")
        except Refused as exc:
            return _page(page_render.sign_in(next_url, exc.detail), "Sign in · docvec search", exc.status, exc.headers)
        except (DocvecError, PoolTimeout, psycopg.Error) as exc:
            return self._failed("", "Sign in · docvec search", exc, False)
        response = RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, credential, path="/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def sign_out(self, request: Request) -> Response:
        """``POST /session/end``: forget the browser's credential."""
        if not _same_origin(request):
            return _page(page_render.message("Refused: this sign-out form was sent from another site."),
                         "docvec search", 403)
        response = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response


class ChunkGone(Exception):
    """A context link whose chunk the same search no longer returns (404)."""


def _first(values: Sequence[str] | None) -> str:
    return values[0] if values else ""


def _found(hits: Sequence[SearchHit], chunk_id: str) -> SearchHit:
    """The hit a context link names; ``ChunkGone`` when the search no longer returns it."""
    for hit in hits:
        if hit.chunk_id == chunk_id:
            return hit
    raise ChunkGone(f"Chunk {chunk_id} is no longer among this search's results (the store changed since the "
                      "link was made): search again.")


def search_page(service: SearchService, unreachable: Callable[[BaseException], bool],
                metrics: ServeMetrics) -> APIRouter:
    """The search page's routes (``/``, ``/static/…``, ``/session``), for ``create_app`` to include; its
    searches are counted in ``metrics`` as ``/search``'s are."""
    return SearchPage(service, unreachable, metrics).router()
