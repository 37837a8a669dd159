"""What ``docvec mcp``'s tools do, apart from the protocol: search through the one ``SearchService``,
read a document's chunks, say what the store holds, each as the caller (``Acting``: principals and
tenant, or the server's own role where permissions are not in use). Every failure a caller can act on
is a ``ToolError`` with one sentence (the model reads it and can retry), never a crash; credentials and
connection strings never appear in one."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg
from mcp.server.mcpserver.exceptions import ToolError
from psycopg_pool import PoolTimeout

from pipeline.api.app import unreachable
from pipeline.errors import ConfigError, DocvecError, PreconditionError, StoredStateError
from pipeline.mcp_server import results
from pipeline.query.request import SearchRequest, request, validated
from pipeline.query.service import ConnectionSource, SearchService, refuse_lost_history
from pipeline.storage import access, document_reads, tombstones
from pipeline.storage.chunk_search import Scope
from pipeline.storage.sqlstate import first_line

log = logging.getLogger(__name__)

MAX_WINDOW = 10
MAX_CHUNKS = 200
UNAVAILABLE = ("the database is unavailable right now, so docvec cannot answer; retry in a moment "
               "(if it persists, an operator should run `docvec doctor`)")


@dataclass(frozen=True)
class Acting:
    """Whom a call reads as: ``principals`` (and ``tenant``) through row-level security, or None for the
    server's own role (only while no stored document names readers)."""
    principals: tuple[str, ...] | None = None
    tenant: str | None = None

    @classmethod
    def configured(cls, principals: list[str] | None, tenant: str | None) -> Acting:
        """The principals ``--as``/``--tenant`` name, checked (``ConfigError`` naming the option)."""
        if tenant is not None and not principals:
            raise ConfigError("--tenant narrows a search as principals: give them too (--as PRINCIPAL --tenant "
                              f"{tenant[:40]})")
        if not principals:
            return cls()
        return cls(tuple(access.checked_principals(principals)), access.checked_tenant(tenant))


@contextmanager
def tool_errors(doing: str) -> Iterator[None]:
    """Errors a caller or an operator can act on, as a ``ToolError`` of one sentence (by type, never by message)."""
    try:
        yield
    except ToolError:
        raise
    except ConfigError as exc:
        raise ToolError(str(exc)) from exc
    except (DocvecError, PoolTimeout, psycopg.Error) as exc:
        if unreachable(exc):
            log.warning("%s: the database is unavailable (%s)", doing, first_line(exc))
            raise ToolError(UNAVAILABLE) from exc
        if isinstance(exc, PreconditionError | StoredStateError):
            raise ToolError(f"docvec cannot answer until an operator acts: {exc}") from exc
        log.error("%s failed: %s", doing, first_line(exc))
        raise ToolError(f"{doing} failed in the database ({first_line(exc, 'error')}); an operator should "
                        "check the server's log") from exc


class DocvecTools:
    """The tools' work over one search service and the connections it reads through."""

    def __init__(self, service: SearchService, connections: ConnectionSource) -> None:
        self.service = service
        self.connections = connections
        self._restricted = False  # once documents carry readers, they keep carrying them: checked until then

    def _acting(self, conn: psycopg.Connection[Any], who: Acting) -> AbstractContextManager[Any]:
        """Read as ``who``; as the server's own role only while no stored document names readers."""
        if who.principals is not None:
            return access.acting_as(conn, who.principals, who.tenant)
        if not self._restricted:
            self._restricted = document_reads.any_restricted(conn)
        if self._restricted:
            raise ToolError("this store's documents name their readers (permissions are in use) and this server "
                            "was started without principals, so it answers nobody: restart it as the user it "
                            "serves (`docvec mcp --as PRINCIPAL`, with --tenant where tenants are used)")
        return nullcontext()

    def _checked_everyone(self, who: Acting) -> None:
        if who.principals is None:
            with self.connections.connection() as conn:
                self._acting(conn, who)

    def search(self, options: Mapping[str, Any], who: Acting) -> dict[str, Any]:
        """The hits for ``options`` (any ``SearchRequest`` field; None values take its default)."""
        with tool_errors("the search"):
            wanted = validated(SearchRequest, {key: value for key, value in options.items() if value is not None})
            if not wanted.query.strip():
                raise ConfigError("the query is blank: give the words or question to search for")
            self._checked_everyone(who)
            result = self.service.search(wanted, principals=who.principals, tenant=who.tenant)
            return results.search_result(wanted.query, result)

    def fetch_document(self, doc_id: str, who: Acting, *, chunk_id: str | None = None, window: int = 2,
                       first: int = 0, max_chunks: int = 50, as_of: str | None = None) -> dict[str, Any]:
        """``doc_id``'s chunks in order (from ``first``, at most ``max_chunks``), or the ``window`` chunks
        on each side of ``chunk_id`` in it; the version a search would return (``as_of``: by that day)."""
        with tool_errors("fetching the document"):
            day = _day(as_of)
            if not doc_id.strip():
                raise ConfigError("doc_id is blank: give a document id as search results show it")
            if not 0 <= window <= MAX_WINDOW or not 1 <= max_chunks <= MAX_CHUNKS or first < 0:
                raise ConfigError(f"window must be 0..{MAX_WINDOW}, max_chunks 1..{MAX_CHUNKS} and first 0 or more "
                                  f"(got window={window}, max_chunks={max_chunks}, first={first})")
            model_id = self.service.identify().id
            with self.connections.connection() as conn, self._acting(conn, who):
                if day is not None:
                    refuse_lost_history(conn, request("fetch_document", as_of=day))
                scope = Scope(model_id=model_id, as_of=day)
                if chunk_id is not None:
                    chunks = document_reads.chunk_window(conn, doc_id, chunk_id, window, scope)
                    more = None
                else:
                    chunks = document_reads.version_chunks(conn, doc_id, scope, first=first, limit=max_chunks + 1)
                    more = chunks[max_chunks].seq if len(chunks) > max_chunks else None
                    chunks = chunks[:max_chunks]
            if not chunks:
                raise ToolError(_missing(doc_id, chunk_id, first))
            return results.document(chunks, more_from=more)

    def store_info(self, who: Acting) -> dict[str, Any]:
        """What the caller can search: the served model, searchable documents, each stored day's documents
        and chunks (counting only what the caller may read)."""
        with tool_errors("reading the store's contents"):
            stored = self.service.identify()
            with self.connections.connection() as conn, self._acting(conn, who):
                days = document_reads.day_holdings(conn, stored.id)
                searchable = tombstones.searchable_documents(conn)
            return {"model": stored.label, "searchable_documents": searchable,
                    "first_day": days[0].day.isoformat() if days else None,
                    "last_day": days[-1].day.isoformat() if days else None,
                    "document_versions": sum(d.documents for d in days), "chunks": sum(d.chunks for d in days),
                    "days": [{"day": d.day.isoformat(), "documents": d.documents, "chunks": d.chunks} for d in days],
                    "scope": "what this caller may read" if who.principals is not None else "every document"}


def _day(value: str | None) -> dt.date | None:
    if value is None or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"as_of {value[:40]!r} is not a date: give YYYY-MM-DD") from None


def _missing(doc_id: str, chunk_id: str | None, first: int) -> str:
    """Why nothing came back, without telling a document the caller may not read from one that is not stored."""
    if chunk_id is not None:
        return (f"document {doc_id[:200]!r} has no chunk {chunk_id[:64]!r} that you can read (chunk ids change when "
                "a document is re-ingested): search again, or fetch the document without chunk_id")
    if first > 0:
        return f"document {doc_id[:200]!r} has no chunk at position {first} or after: fetch from first=0"
    return (f"no document {doc_id[:200]!r} is stored that you can read: use a doc_id exactly as search "
            "results give it")
