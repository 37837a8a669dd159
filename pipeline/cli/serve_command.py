"""``docvec serve``: the search API (pipeline/api) under uvicorn, with the authentication its options
configure (``--auth keys``, ``--auth jwt``, or both). Serving on an address other than loopback without
authentication is refused unless ``--allow-anyone-to-search`` says so."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.api.auth import Authentication

AUTH_METHODS = ("keys", "jwt")


def add_query_backend_option(p: argparse.ArgumentParser) -> None:
    """``--query-backend``, for the long-running searchers (``serve``, ``mcp``)."""
    p.add_argument("--query-backend", default="auto", choices=("auto", "torch", "onnx"),
                   help="how queries are encoded (default auto: ONNX Runtime where it is installed and the model "
                        "runs on a CPU, the same vectors as torch ~4x faster; torch otherwise)")


def add_auth_options(p: argparse.ArgumentParser) -> None:
    """``docvec serve``'s authentication options (each with an environment variable for deployments)."""
    env = os.environ.get
    p.add_argument("--auth", action="append", choices=AUTH_METHODS, help=(
        "who may search: keys (API keys from `docvec keys create`), jwt (bearer tokens checked against --jwks); "
        "repeat for both (default $DOCVEC_SERVE_AUTH, comma-separated; none: anyone, which only loopback allows)"))
    p.add_argument("--jwks", default=env("DOCVEC_JWKS"), help="JWT: JSON Web Key Set file of the issuer's public keys")
    p.add_argument("--issuer", default=env("DOCVEC_JWT_ISSUER"), help="JWT: the iss tokens must hold")
    p.add_argument("--audience", default=env("DOCVEC_JWT_AUDIENCE"), help="JWT: the aud tokens must hold")
    p.add_argument("--jwt-algorithms", default=env("DOCVEC_JWT_ALGORITHMS", "RS256,ES256"),
                   help="JWT: allowed signature algorithms (asymmetric only; default RS256,ES256)")
    p.add_argument("--jwt-leeway", type=float, default=float(env("DOCVEC_JWT_LEEWAY", "30")),
                   help="JWT: seconds of clock skew allowed on exp/nbf/iat (default 30)")
    p.add_argument("--jwt-principal-claims", default=env("DOCVEC_JWT_PRINCIPAL_CLAIMS", "groups,sub"),
                   help="JWT: claims whose values are the caller's principals (default groups,sub)")
    p.add_argument("--jwt-tenant-claim", default=env("DOCVEC_JWT_TENANT_CLAIM"),
                   help="JWT: claim naming the caller's tenant (then required in every token)")
    p.add_argument("--rate-limit", default=env("DOCVEC_SERVE_RATE_LIMIT", "600/min"),
                   help="requests per caller (key or token subject) without a rate of its own: N/s, N/min, N/hour, "
                        "or 'none' (default 600/min)")
    p.add_argument("--allow-anyone-to-search", action="store_true", help=(
        "serve a non-loopback address without authentication: anyone who reaches the port searches every document"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _methods(args: argparse.Namespace) -> list[str]:
    from pipeline.errors import ConfigError

    chosen = args.auth or [m.strip() for m in os.environ.get("DOCVEC_SERVE_AUTH", "").split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(AUTH_METHODS))
    if unknown:
        raise ConfigError(f"DOCVEC_SERVE_AUTH: unknown method(s) {', '.join(unknown)}; use keys, jwt or keys,jwt")
    return chosen


def authentication(args: argparse.Namespace, settings: Settings,
                   command: str = "docvec serve") -> Authentication | None:
    """The authentication the options ask for, or None; refuses serving beyond loopback without any
    (``command``: the command the refusal names)."""
    from pipeline.api.auth import Authentication, KeyStore, TokenPolicy, TokenVerifier
    from pipeline.api.keys import parse_rate
    from pipeline.errors import ConfigError
    from pipeline.storage import api_keys

    methods = _methods(args)
    if not methods:
        if not is_loopback(args.host) and not args.allow_anyone_to_search:
            raise ConfigError(
                f"{command} --host {args.host} would answer anyone who can reach the port, with every document: "
                "configure authentication (--auth keys, --auth jwt --jwks FILE --issuer ISS --audience AUD), or pass "
                "--allow-anyone-to-search to serve it without (e.g. behind a proxy that authenticates)")
        return None
    tokens = None
    if "jwt" in methods:
        if not args.jwks:
            raise ConfigError("--auth jwt needs --jwks FILE (or $DOCVEC_JWKS): the issuer's public keys")
        tokens = TokenVerifier(TokenPolicy(
            jwks=Path(args.jwks), issuer=args.issuer or "", audience=args.audience or "",
            algorithms=tuple(args.jwt_algorithms.split(",")), leeway=args.jwt_leeway,
            principal_claims=tuple(c.strip() for c in args.jwt_principal_claims.split(",") if c.strip()),
            tenant_claim=args.jwt_tenant_claim or None))
    store = KeyStore(api_keys.key_pool(settings)) if "keys" in methods else None
    rate = None if args.rate_limit.strip().lower() == "none" else parse_rate(args.rate_limit)
    return Authentication(keys=store, tokens=tokens, rate=rate)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve read-only search over HTTP (JSON; OpenAPI docs at /docs)."""
    import uvicorn

    from pipeline.api.app import create_app
    from pipeline.errors import ConfigError
    from pipeline.query.search_model import ServedModel
    from pipeline.query.service import PooledConnections, SearchService
    from pipeline.storage import connections

    if args.pool_size < 2:
        raise ConfigError(f"--pool-size must be at least 2 (a hybrid search runs its two branches on two "
                          f"connections at once), got {args.pool_size}")
    auth = authentication(args, settings)
    pool = connections.search_pool(settings, max_size=args.pool_size, timeout=args.db_timeout)
    model = ServedModel(encode_threads=args.encode_threads, backend=args.query_backend)
    service = SearchService(PooledConnections(pool), model, threads=args.pool_size)
    who = "anyone" if auth is None else "callers with " + " or ".join(
        m for m, on in (("API keys", auth.keys), ("bearer tokens", auth.tokens)) if on is not None)
    print(f"docvec search API on http://{args.host}:{args.port} for {who} (docs: /docs, health: /healthz)", flush=True)
    uvicorn.run(create_app(service, auth), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log)
    return 0
