"""Erasing documents from the store (``docvec forget``): every version of them, in every table that
holds anything of theirs, in one transaction; and the ``erasures`` audit table (what was erased, when,
how many rows of each kind; never any text).

Chunks are deleted as rows wherever they are (day partitions and sealed blocks, every model's
vectors): no partition is rebuilt. pgvector's HNSW and IVFFlat indexes, like PostgreSQL's B-tree and
GIN indexes, stay valid under deletes (a deleted row is skipped by every scan; VACUUM removes its
entries). Term statistics are decremented by exactly the erased chunks' terms, so BM25's document
frequencies stay a recount of the stored chunks. The touched days' ``ingest_days`` records lose their
fingerprints and signatures: the next run of such a day reads its files again instead of judging it
unchanged (see ``forget_days``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pipeline.storage import catalog, metadata_filters, partitions, tombstones
from pipeline.storage.term_stats import DAY_CHUNKS

FORGOTTEN_FINGERPRINT = "forgotten"


@dataclass(frozen=True)
class StoredDocument:
    """One stored version (or dead letter) of a document to erase."""
    doc_id: str
    day: dt.date
    source_uri: str


@dataclass(frozen=True)
class Removed:
    """Rows removed, per kind."""
    chunks: int = 0
    documents: int = 0
    term_stats: int = 0
    dead_letters: int = 0
    ingest_days: int = 0
    tombstones: int = 0
    chunks_per_model: dict[int, int] = field(default_factory=dict)
    days: tuple[dt.date, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The audit row's ``removed``: counts and days, no text."""
        return {"chunks": self.chunks, "documents": self.documents, "term_stats_rows": self.term_stats,
                "dead_letters": self.dead_letters, "ingest_days_invalidated": self.ingest_days,
                "tombstones": self.tombstones,
                "chunks_per_model": {str(k): v for k, v in sorted(self.chunks_per_model.items())},
                "days": [str(d) for d in self.days]}


def matching_ids(conn: psycopg.Connection[Any], filters: Mapping[str, str]) -> list[str]:
    """Ids of documents any stored version or chunk of which holds every ``filters`` pair."""
    if not filters:
        return []
    found: set[str] = set()
    for table, alias in (("documents", "d"), ("chunks", "c")):
        conditions, params = metadata_filters.conditions(f"{alias}.metadata", filters)
        statement = sql.SQL("SELECT DISTINCT {a}.doc_id FROM {t} {a} WHERE {w}").format(
            a=sql.Identifier(alias), t=sql.Identifier(table), w=sql.SQL(" AND ").join(conditions))
        found.update(str(r[0]) for r in conn.execute(statement, params))
    return sorted(found)


def stored_versions(conn: psycopg.Connection[Any], doc_ids: Sequence[str]) -> list[StoredDocument]:
    """Every stored version of these documents: ``documents`` rows, days whose chunks hold them, and
    dead letters of their files (matched by source URI, or by a URI ending in ``/doc_id``)."""
    ids = list(doc_ids)
    rows = conn.execute(
        """
        SELECT doc_id, ingest_date, source_uri FROM documents WHERE doc_id = ANY(%(ids)s)
        UNION
        SELECT DISTINCT c.doc_id, c.ingest_date, coalesce(d.source_uri, '') FROM chunks c
        LEFT JOIN documents d ON d.doc_id = c.doc_id AND d.ingest_date = c.ingest_date
        WHERE c.doc_id = ANY(%(ids)s)
        UNION
        SELECT i.doc_id, l.ingest_date, l.source_uri FROM dead_letters l
        JOIN unnest(%(ids)s::text[]) AS i(doc_id) ON right(l.source_uri, length(i.doc_id) + 1) = '/' || i.doc_id
        ORDER BY 1, 2
        """, {"ids": ids}).fetchall()
    return [StoredDocument(str(doc_id), day, str(uri)) for doc_id, day, uri in rows]


def _dead_letter_uris(found: Sequence[StoredDocument]) -> list[str]:
    return sorted({f.source_uri for f in found if f.source_uri})


def count(conn: psycopg.Connection[Any], doc_ids: Sequence[str], found: Sequence[StoredDocument]) -> Removed:
    """What ``erase`` would remove (``--dry-run``)."""
    ids = list(doc_ids)
    per_model = dict(conn.execute("SELECT model_id, count(*) FROM chunks WHERE doc_id = ANY(%s) GROUP BY 1",
                                  (ids,)).fetchall())
    documents = conn.execute("SELECT count(*) FROM documents WHERE doc_id = ANY(%s)", (ids,)).fetchone()
    letters = conn.execute("SELECT count(*) FROM dead_letters WHERE source_uri = ANY(%s)",
                           (_dead_letter_uris(found),)).fetchone()
    days = tuple(sorted({f.day for f in found}))
    return Removed(chunks=sum(per_model.values()), documents=int(documents[0]) if documents else 0,
                   dead_letters=int(letters[0]) if letters else 0, chunks_per_model={int(k): int(v) for k, v in
                                                                                     per_model.items()},
                   days=days, tombstones=tombstones.count_of(conn, ids))


def _lock_versions(conn: psycopg.Connection[Any], ids: list[str]) -> list[StoredDocument]:
    """The documents' stored versions, with the day locks of their days held (inside the caller's
    transaction): a load, seal or retention trim of such a day, which copies rows from the partition it
    replaces, waits for the erasure, so it can never carry erased rows over into a new partition."""
    locked: set[dt.date] = set()
    while True:
        found = stored_versions(conn, ids)
        new = sorted({f.day for f in found} - locked)
        if not new:
            return found
        for day in new:
            partitions.lock_days(conn, day, day)
        locked.update(new)


def erase(conn: psycopg.Connection[Any], doc_ids: Sequence[str],
          filters: Mapping[str, str] | None = None) -> tuple[list[StoredDocument], Removed]:
    """Delete every version of the documents, everywhere, and record the erasure, in one transaction.
    Returns the versions erased and what went (the audit row holds the same counts)."""
    ids = list(doc_ids)
    with conn.transaction():
        found = _lock_versions(conn, ids)
        per_model, stats = delete_chunks(conn, sql.SQL("doc_id = ANY(%(ids)s)"), {"ids": ids})
        documents = conn.execute("DELETE FROM documents WHERE doc_id = ANY(%s)", (ids,)).rowcount
        letters = conn.execute("DELETE FROM dead_letters WHERE source_uri = ANY(%s)",
                               (_dead_letter_uris(found),)).rowcount
        days = sorted({f.day for f in found})
        invalidated = forget_days(conn, days)
        erased_tombstones = tombstones.erase(conn, ids)
        removed = Removed(chunks=sum(per_model.values()), documents=documents, term_stats=stats, dead_letters=letters,
                          ingest_days=invalidated, tombstones=erased_tombstones, chunks_per_model=per_model,
                          days=tuple(days))
        conn.execute("INSERT INTO erasures (doc_ids, filter, removed) VALUES (%s, %s::jsonb, %s::jsonb)",
                     (ids, json.dumps(dict(filters)) if filters else None, json.dumps(removed.as_json())))
        conn.execute("ANALYZE documents")
    return found, removed


def delete_chunks(conn: psycopg.Connection[Any], condition: sql.Composable,
                  params: Mapping[str, Any]) -> tuple[dict[int, int], int]:
    """Delete the chunks matching ``condition`` (every model's, wherever they are: no partition is
    rebuilt) and lower the term statistics by exactly their terms, inside the caller's transaction
    (which must hold the day locks of the days they are on). Returns the chunks deleted per model and
    the term_stats rows changed."""
    conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS erased_terms (model_id int, ingest_date date, term int, n int) "
                 "ON COMMIT DROP")
    conn.execute("TRUNCATE erased_terms")
    # The deleted chunks' terms per (model, day), and their number under DAY_CHUNKS.
    conn.execute(sql.SQL(
        """
        WITH gone AS (DELETE FROM chunks WHERE {condition} RETURNING model_id, ingest_date, lexical_terms)
        INSERT INTO erased_terms
        SELECT model_id, ingest_date, t.term, count(*) FROM gone
        CROSS JOIN LATERAL unnest(coalesce(lexical_terms, '{{}}'::int[])) AS t(term) GROUP BY 1, 2, 3
        UNION ALL
        SELECT model_id, ingest_date, %(day_chunks)s, count(*) FROM gone GROUP BY 1, 2
        """).format(condition=condition), {**params, "day_chunks": DAY_CHUNKS})
    per_model = {int(m): int(n) for m, n in conn.execute(
        "SELECT model_id, sum(n)::bigint FROM erased_terms WHERE term = %s GROUP BY 1", (DAY_CHUNKS,))}
    stats = conn.execute(
        """
        UPDATE term_stats s SET df = s.df - e.n FROM erased_terms e
        WHERE s.model_id = e.model_id AND s.ingest_date = e.ingest_date AND s.term = e.term
        """).rowcount
    conn.execute(
        """
        DELETE FROM term_stats s USING erased_terms e
        WHERE s.model_id = e.model_id AND s.ingest_date = e.ingest_date AND s.term = e.term AND s.df <= 0
        """)
    return per_model, stats


def forget_days(conn: psycopg.Connection[Any], days: Sequence[dt.date]) -> int:
    """The touched days' ``ingest_days`` records, every model's: counts lowered to what the days now
    hold, fingerprints and signatures cleared. The next run of such a day therefore reads its files
    again (no "unchanged" judged from a record that no longer describes the rows): what the landing
    zone still holds comes back, re-using stored vectors for unchanged text; what it no longer holds
    stays gone."""
    if not days:
        return 0
    return conn.execute(
        """
        UPDATE ingest_days i SET
            fingerprint = %(forgotten)s, source_signature = NULL, content_fingerprint = NULL,
            chunks = (SELECT count(*) FROM chunks c WHERE c.ingest_date = i.ingest_date AND c.model_id = i.model_id),
            documents = (SELECT count(*) FROM documents d WHERE d.ingest_date = i.ingest_date),
            dead_letters = (SELECT count(*) FROM dead_letters l
                            WHERE l.ingest_date = i.ingest_date AND l.resolved_at IS NULL)
        WHERE ingest_date = ANY(%(days)s)
        """, {"forgotten": FORGOTTEN_FINGERPRINT, "days": list(days)}).rowcount


def vacuum(conn: psycopg.Connection[Any], days: Sequence[dt.date]) -> list[str]:
    """VACUUM the partitions holding ``days`` and the small tables an erasure deleted from (outside any
    transaction): the deleted rows' space, text included, is marked for reuse and their index entries
    go now rather than when autovacuum comes by. Returns the tables vacuumed."""
    tables = sorted({held.table for held in (catalog.partition_for(conn, day) for day in days) if held is not None})
    tables += ["documents", "dead_letters", "term_stats"]
    autocommit = conn.autocommit
    conn.commit()
    conn.autocommit = True
    try:
        for table in tables:
            conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))
    finally:
        conn.autocommit = autocommit
    return tables


def audit(conn: psycopg.Connection[Any], limit: int = 20) -> list[dict[str, Any]]:
    """The latest erasures, newest first."""
    rows = conn.execute("SELECT erased_at, erased_by, doc_ids, filter, removed FROM erasures "
                        "ORDER BY erased_at DESC, id DESC LIMIT %s", (limit,)).fetchall()
    return [{"erased_at": at, "erased_by": by, "doc_ids": list(ids), "filter": flt, "removed": removed}
            for at, by, ids, flt, removed in rows]
