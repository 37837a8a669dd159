"""A store of a test module's own whose documents name their readers: one short note per document, all
saying "harbour ledger" (so one query reaches every one of them), loaded through the engine, then each
document's readers set as ingestion would have recorded them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg

from pipeline.ingest.embedding import Embedder
from pipeline.ingest.landing import LocalLanding
from pipeline.settings import Settings
from pipeline.storage import connections
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.sample import day_folder

NOTE = "# Note {n}\n\nThe harbour ledger entry {entry} is filed by the desk."


def store_with_readers(migrated: Settings, embedder: Embedder, landing: Path, database: str, day: dt.date,
                       readers: Mapping[str, Sequence[str]], note: str = NOTE) -> Settings:
    """Database ``database`` (fresh, migrated) holding one note per ``readers`` key on ``day``, readable by
    its principals; ``note`` is formatted with ``n`` (its place) and ``entry`` (its name without ``.md``)."""
    base = fresh_database(migrated, embedder.info.dim, database)
    folder = day_folder(landing, day)
    for n, name in enumerate(readers):
        (folder / name).write_text(note.format(n=n, entry=name.removesuffix(".md")))
    with connections.connect(base) as conn:
        run_days(conn, LocalLanding(landing), [day], embedder)
        with conn.transaction():
            for doc_id, names in readers.items():
                conn.execute("UPDATE documents SET readers = %s WHERE doc_id = %s", (list(names), doc_id))
    return base


def chunks_out_of_step(conn: psycopg.Connection) -> list[tuple[str, str, list[str], list[str] | None]]:
    """Chunks whose ``readers`` are not their version's (migration 0015 keeps them equal; a chunk without
    a version row must hold ``{}``): ``(day, chunk_id, chunk readers, version readers)``, as the owner sees
    them. Empty when the chunks policy and the documents policy admit the same rows."""
    return [(str(day), chunk_id, list(mine), None if theirs is None else list(theirs))
            for day, chunk_id, mine, theirs in conn.execute(
                """
                SELECT c.ingest_date, c.chunk_id, c.readers, d.readers FROM chunks c
                LEFT JOIN documents d ON d.ingest_date = c.ingest_date AND d.doc_id = c.doc_id
                WHERE c.readers IS DISTINCT FROM coalesce(d.readers, '{}')
                ORDER BY 1, 2
                """)]
