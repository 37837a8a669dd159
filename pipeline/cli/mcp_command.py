"""``docvec mcp``: the store's search as an MCP server for AI agents (pipeline/mcp_server), over stdio
(the default: a desktop agent launches it) or streamable HTTP (``--http``: remote agents). Over HTTP it
takes ``docvec serve``'s authentication options and refusals; without authentication (stdio, or HTTP on
loopback) every call reads as the principals ``--as`` names (and ``--tenant``), or, only while no stored
document names readers, as the server's own role."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from pipeline.cli.serve_command import add_auth_options, add_query_backend_option
from pipeline.settings import Settings


def add_mcp_parser(sub: Any) -> None:
    """``docvec mcp``'s options (the authentication ones are ``docvec serve``'s)."""
    p = sub.add_parser("mcp", help=cmd_mcp.__doc__)
    p.add_argument("--http", action="store_true",
                   help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (the default)")
    p.add_argument("--host", default="127.0.0.1", help="--http: address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8766, help="--http: port (default 8766)")
    p.add_argument("--as", dest="principals", action="append", metavar="PRINCIPAL", help=(
        "without authentication (stdio, or --http without --auth): every call searches as this principal "
        "(repeatable: a user and their groups, e.g. --as alice --as group:hr); required once documents name readers"))
    p.add_argument("--tenant", help="with --as: also only the documents of this tenant")
    p.add_argument("--pool-size", type=int, default=4,
                   help="database connections at most (default 4; a hybrid search uses two at once)")
    p.add_argument("--encode-threads", type=int, default=1, help="CPU threads per query encode (default 1)")
    add_query_backend_option(p)
    p.add_argument("--db-timeout", type=float, default=5.0,
                   help="seconds a call waits for a database connection before it answers that the database is "
                        "unavailable (default 5)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    add_auth_options(p)
    p.set_defaults(func=cmd_mcp)


def _warm(service: Any) -> None:
    """Load the served model in the background, so the first search does not wait for it (best effort:
    the first search loads it, or reports why it cannot)."""
    import psycopg
    from psycopg_pool import PoolTimeout

    from pipeline.errors import DocvecError

    try:
        service.embedder()
    except (DocvecError, psycopg.Error, PoolTimeout):
        return


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    """Serve search to AI agents over the Model Context Protocol (stdio, or streamable HTTP with --http)."""
    from pipeline.cli.serve_command import authentication
    from pipeline.errors import ConfigError
    from pipeline.mcp_server.server import build_server
    from pipeline.mcp_server.tools import Acting, DocvecTools
    from pipeline.query.search_model import ServedModel
    from pipeline.query.service import PooledConnections, SearchService
    from pipeline.storage import connections

    if args.pool_size < 2:
        raise ConfigError(f"--pool-size must be at least 2 (a hybrid search runs its two branches on two "
                          f"connections at once), got {args.pool_size}")
    acting = Acting.configured(args.principals, args.tenant)
    if not args.http and args.auth:
        raise ConfigError("--auth applies to --http; over stdio the agent's host launches docvec mcp, which "
                          "searches as --as PRINCIPAL (with --tenant)")
    auth = authentication(args, settings, command="docvec mcp --http") if args.http else None
    if auth is not None and acting.principals is not None:
        raise ConfigError("--as and --tenant apply without authentication: with --auth each caller searches as "
                          "its own key's or token's principals; leave --as out")
    source = PooledConnections(connections.search_pool(settings, max_size=args.pool_size, timeout=args.db_timeout))
    model = ServedModel(encode_threads=args.encode_threads, backend=args.query_backend)
    service = SearchService(source, model, threads=args.pool_size)
    server = build_server(DocvecTools(service, source), None if auth is not None else acting)
    service.open()
    if auth is not None:
        auth.open()
    try:
        threading.Thread(target=_warm, args=(service,), name="docvec-warm", daemon=True).start()
        if args.http:
            _serve_http(args, server, auth)
        else:
            print("docvec mcp: serving the Model Context Protocol on stdio", file=sys.stderr, flush=True)
            server.run("stdio")
    finally:
        if auth is not None:
            auth.close()
        service.close()
    return 0


def _serve_http(args: argparse.Namespace, server: Any, auth: Any) -> None:
    import uvicorn

    from pipeline.mcp_server.http import MCP_PATH, http_app

    who = "anyone" if auth is None else "callers with " + " or ".join(
        m for m, on in (("API keys", auth.keys), ("bearer tokens", auth.tokens)) if on is not None)
    print(f"docvec MCP server on http://{args.host}:{args.port}{MCP_PATH} (streamable HTTP) for {who}", flush=True)
    uvicorn.run(http_app(server, auth, args.host), host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)
