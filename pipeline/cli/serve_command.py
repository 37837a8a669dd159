"""``docvec serve``: the search API (pipeline/api) under uvicorn."""

from __future__ import annotations

import argparse

from pipeline.settings import Settings


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
    pool = connections.search_pool(settings, max_size=args.pool_size, timeout=args.db_timeout)
    service = SearchService(PooledConnections(pool), ServedModel(encode_threads=args.encode_threads),
                            threads=args.pool_size)
    print(f"docvec search API on http://{args.host}:{args.port} (docs: /docs, health: /healthz)", flush=True)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log)
    return 0
