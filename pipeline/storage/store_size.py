"""How much the store takes on disk, and how much of it is each stored version of a document: what the
living-collection benchmark compares (the whole store against the live collection it serves)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.storage import catalog

# The tables that grow with what is stored, besides the partitions of ``chunks``.
STORE_TABLES = ("documents", "term_stats", "document_deletions")


@dataclass(frozen=True)
class StoreSize:
    """Bytes on disk (tables with their indexes and TOAST): ``chunks``' partitions and each of
    ``STORE_TABLES``."""
    chunks: int
    tables: dict[str, int]

    @property
    def total(self) -> int:
        return self.chunks + sum(self.tables.values())


@dataclass(frozen=True)
class VersionSize:
    """One stored version of a document (its ``doc_id`` on its ``ingest_date``): chunk rows and the
    bytes of its rows (chunks and its ``documents`` row, as stored, before indexes and page overhead)."""
    rows: int
    row_bytes: int


def store_size(conn: psycopg.Connection[Any]) -> StoreSize:
    """The store's bytes on disk now: every partition of ``chunks``, and ``STORE_TABLES``."""
    return StoreSize(sum(p.bytes for p in catalog.partitions(conn)),
                     {name: catalog.relation_size(conn, name) for name in STORE_TABLES})


def version_sizes(conn: psycopg.Connection[Any]) -> dict[tuple[str, dt.date], VersionSize]:
    """Every stored version {(doc_id, ingest_date): its size}, from one scan of ``chunks`` and one of
    ``documents``."""
    chunks = {(doc_id, day): (int(rows), int(size)) for doc_id, day, rows, size in conn.execute(
        "SELECT doc_id, ingest_date, count(*), sum(pg_column_size(c.*)) FROM chunks c GROUP BY doc_id, ingest_date")}
    documents = {(doc_id, day): int(size) for doc_id, day, size in conn.execute(
        "SELECT doc_id, ingest_date, pg_column_size(d.*) FROM documents d")}
    return {key: VersionSize(chunks.get(key, (0, 0))[0], chunks.get(key, (0, 0))[1] + documents.get(key, 0))
            for key in chunks.keys() | documents.keys()}
