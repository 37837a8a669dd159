"""API keys for ``docvec serve`` (migration 0013): created, listed and revoked by an admin (``docvec keys``),
looked up by the server on every request through the owner's connection (``key_pool``), so a revoked key
stops at once. Only the SHA-256 of a key's secret is stored; ``docvec_reader`` may not read this table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from pipeline.errors import DatabaseSetupError
from pipeline.settings import Settings
from pipeline.storage.connections import connect_kwargs
from pipeline.storage.sqlstate import connection_guard as _connection_guard
from pipeline.storage.urls import docvec_url

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

# last_used_at is written at most this often per key: a busy key does not write on every request.
TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class ApiKey:
    """A stored key as ``docvec keys list`` shows it (never its secret nor the secret's hash).
    ``rate``: (requests, seconds) of its own limit, or None for the server's default."""
    id: str
    name: str | None
    principals: tuple[str, ...]
    tenant: str | None
    rate: tuple[int, int] | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class StoredSecret:
    """What the server needs to check a presented key: the stored digest and the key's grants."""
    key: ApiKey
    secret_sha256: bytes


@contextmanager
def connection_guard(doing: str) -> Iterator[None]:
    """``sqlstate.connection_guard``, and a store without the table (before migration 0013) named as such."""
    with _connection_guard(doing):
        try:
            yield
        except psycopg.errors.UndefinedTable as exc:
            raise DatabaseSetupError(f"{doing} needs the api_keys table of migration 0013: run `docvec migrate`") from exc


_COLUMNS = "id, name, principals, tenant, rate_count, rate_seconds, created_at, last_used_at, revoked_at"


def _key(row: Sequence[Any]) -> ApiKey:
    rate = (row[4], row[5]) if row[4] is not None else None
    return ApiKey(id=row[0], name=row[1], principals=tuple(row[2]), tenant=row[3], rate=rate, created_at=row[6],
                  last_used_at=row[7], revoked_at=row[8])


def create(conn: psycopg.Connection[Any], *, key_id: str, secret_sha256: bytes, principals: Sequence[str],
           tenant: str | None, name: str | None, rate: tuple[int, int] | None) -> ApiKey:
    """Store a new key's digest and grants."""
    with connection_guard("storing an API key"):
        row = conn.execute(
            f"""INSERT INTO api_keys (id, name, principals, tenant, secret_sha256, rate_count, rate_seconds)
                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
            (key_id, name, list(principals), tenant, secret_sha256, *(rate or (None, None)))).fetchone()
    assert row is not None
    return _key(row)


def listed(conn: psycopg.Connection[Any]) -> list[ApiKey]:
    """Every key, oldest first (revoked ones too)."""
    with connection_guard("listing API keys"):
        return [_key(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")]


def revoke(conn: psycopg.Connection[Any], key_id: str) -> ApiKey | None:
    """Revoke the key (kept, so ``list`` still shows it and the server answers 403); None when no key has
    this id. Revoking a revoked key keeps its first revocation time."""
    with connection_guard("revoking an API key"):
        row = conn.execute(f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s
                               RETURNING {_COLUMNS}""", (key_id,)).fetchone()
    return _key(row) if row is not None else None


def secret_of(conn: psycopg.Connection[Any], key_id: str) -> StoredSecret | None:
    """The key with this id and its stored digest, or None; marks it used (at most every ``TOUCH_EVERY``)."""
    with connection_guard("looking up an API key"):
        row = conn.execute(f"SELECT {_COLUMNS}, secret_sha256 FROM api_keys WHERE id = %s", (key_id,)).fetchone()
    if row is None:
        return None
    return StoredSecret(key=_key(row), secret_sha256=bytes(row[9]))


def touch(conn: psycopg.Connection[Any], key_id: str) -> None:
    """Record that the key was used now (at most once per ``TOUCH_EVERY``, so a busy key rarely writes)."""
    with connection_guard("recording an API key's use"):
        conn.execute("""UPDATE api_keys SET last_used_at = now()
                        WHERE id = %s AND (last_used_at IS NULL OR last_used_at < now() - %s)""",
                     (key_id, TOUCH_EVERY))


def key_pool(settings: Settings, *, max_size: int = 2, timeout: float = 5.0) -> ConnectionPool:
    """A small pool on docvec's own (owner) URL for ``docvec serve``'s key lookups: keys are never read
    through the search URL, whose role may not read them (and may be a replica that lags a revocation).
    Opened and closed by the caller."""
    from psycopg_pool import ConnectionPool
    return ConnectionPool(docvec_url(settings), min_size=1, max_size=max_size, timeout=timeout, open=False,
                          kwargs={"autocommit": True, **connect_kwargs(settings)},
                          check=ConnectionPool.check_connection, name="docvec-keys")
