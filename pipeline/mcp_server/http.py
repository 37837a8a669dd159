"""``docvec mcp --http``: the MCP server over streamable HTTP (stateless: every POST stands alone, so
every request is authenticated on its own), behind ``docvec serve``'s authentication
(``pipeline/api/auth.py``): each request's ``Authorization: Bearer <API key or token>`` is checked before
the MCP layer sees it; 401 without credentials or with bad ones, 403 for a revoked key, 429 over the
caller's rate, 503 while the keys cannot be looked up. The caller is left in the request's state for the
tools (``server.CALLER_STATE``). Credentials never appear in an answer or a log line."""

from __future__ import annotations

import logging

import anyio
import psycopg
from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.api.app import RETRY_AFTER_SECONDS, unreachable
from pipeline.api.auth import Authentication, Refused
from pipeline.errors import DocvecError
from pipeline.mcp_server.server import CALLER_STATE, DocvecMCP
from pipeline.storage.sqlstate import first_line

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"


class Authenticated:
    """ASGI middleware: the caller of each HTTP request, or the refusal ``Authentication`` decides."""

    def __init__(self, app: ASGIApp, auth: Authentication) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        try:
            caller = await anyio.to_thread.run_sync(self.auth.caller, header)  # a key is looked up in the database
        except Refused as exc:
            await JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)(scope, receive, send)
            return
        except (DocvecError, PoolTimeout, psycopg.Error) as exc:
            if not unreachable(exc):
                raise
            log.warning("checking a caller's key: the database is unavailable (%s)", first_line(exc))
            await JSONResponse({"detail": "the database is unavailable, so the key cannot be checked; retry shortly"},
                               status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = caller
        await self.app(scope, receive, send)


def http_app(server: DocvecMCP, auth: Authentication | None, host: str) -> ASGIApp:
    """The streamable HTTP app at ``/mcp`` (JSON responses, no sessions), authenticated when ``auth``."""
    app: Starlette = server.streamable_http_app(streamable_http_path=MCP_PATH, json_response=True,
                                                stateless_http=True, host=host)
    return app if auth is None else Authenticated(app, auth)
