"""Searching as principals: the session becomes ``docvec_reader`` and names its principals for one
transaction, and PostgreSQL's row-level security (migration 0012) decides every row it reads: only the
document versions whose readers meet them (or hold ``*``), their chunks and their tombstones. Nothing in
docvec filters by permission itself, so no face can go around it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from pipeline.errors import ConfigError, DatabaseSetupError
from pipeline.storage.sqlstate import connection_guard

READER_ROLE = "docvec_reader"
MAX_PRINCIPALS = 1000
_PRINCIPAL = re.compile(r"[^\s,{}\"\\]{1,200}")  # no separators or array-literal syntax: one principal each


def checked_principals(principals: Sequence[str]) -> list[str]:
    """``principals`` sorted and without repeats, each a non-empty name without whitespace, commas,
    braces, quotes or backslashes (at most 200 characters; at most ``MAX_PRINCIPALS``); ``*`` is not a
    principal a caller may claim (it marks documents everyone may read). Otherwise a ``ConfigError``."""
    found = sorted(set(principals))
    bad = [p for p in found if p == "*" or not _PRINCIPAL.fullmatch(p)]
    if bad:
        shown = ", ".join(repr(p[:40]) for p in bad[:5])
        raise ConfigError(f"invalid principal(s) {shown}: a principal is a name such as alice@example.com, "
                          "group:hr or tenant:acme (no spaces, commas, braces, quotes or backslashes; '*' marks "
                          "public documents and cannot be claimed)")
    if len(found) > MAX_PRINCIPALS:
        raise ConfigError(f"{len(found)} principals: at most {MAX_PRINCIPALS} per search")
    return found


def checked_tenant(tenant: str | None) -> str | None:
    """``tenant`` when ``tenant:<tenant>`` is a valid principal (see ``checked_principals``), None for
    None; otherwise a ``ConfigError``."""
    if tenant is None:
        return None
    if not tenant or not _PRINCIPAL.fullmatch(f"tenant:{tenant}"):
        raise ConfigError(f"invalid tenant {tenant[:40]!r}: a tenant is a name such as acme (no spaces, commas, "
                          "braces, quotes or backslashes; at most 193 characters)")
    return tenant


@contextmanager
def acting_as(conn: psycopg.Connection[Any], principals: Sequence[str],
              tenant: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    """Run the block in a transaction (or savepoint) as ``docvec_reader`` with ``principals``: what it
    reads is what those principals may read. ``tenant``: also only the versions whose readers hold
    ``tenant:<tenant>`` (migration 0013's restrictive policy), AND-ed with the principals. The role,
    principals and tenant end with the block, whether it succeeds (reset) or fails (rolled back)."""
    names = checked_principals(principals)
    scope = checked_tenant(tenant)
    with connection_guard("searching as principals"), conn.transaction():
        try:
            conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
        except psycopg.errors.InvalidParameterValue as exc:
            raise DatabaseSetupError(
                f"searching as principals needs the {READER_ROLE} role, which migration 0004 creates when the "
                "migrating user may create roles: run `docvec migrate` as a superuser, or give a DBA the "
                "statements of `docvec migrate --sql`") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DatabaseSetupError(
                f"this login may not act as {READER_ROLE}: grant it (GRANT {READER_ROLE} TO <login>) or search "
                f"through DOCVEC_SEARCH_DATABASE_URL with a login in {READER_ROLE}") from exc
        conn.execute("SELECT set_config('docvec.principals', %s::text[]::text, true), "
                     "set_config('docvec.tenant', %s, true)", (names, scope or ""))
        yield conn
        conn.execute("RESET ROLE")
        conn.execute("SELECT set_config('docvec.principals', '', true), set_config('docvec.tenant', '', true)")
