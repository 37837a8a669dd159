"""Loopback networking for the servers the tests start (PostgreSQL clusters, PgBouncer, S3, Redis, web UIs)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
