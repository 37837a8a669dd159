"""``docvec forget``: a document erased leaves nothing of its text anywhere docvec keeps anything (both
models' vectors, documents, term statistics, dead letters, the steps' day batches, Dagster's event log),
an audit row says what went, a sealed block loses rows without being rebuilt, and a wrong id or filter
erases nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, materialize
from psycopg import sql

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.cli.main import main
from pipeline.errors import ConfigError
from pipeline.indexing import sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.ops import forget, store_checks
from pipeline.query import search
from pipeline.records import ModelInfo
from pipeline.storage import catalog, connections, days, model_registry
from pipeline.storage.layout import LayoutSettings
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support.databases import fresh_database
from tests.support.queries import term_stats_match_a_recount
from tests.support.sample import SAMPLE_END, day_folder
from tests.support.vectors import clustered, synthetic_day

ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]
MARKER = "zq-marker-7731"
SECRET = f"""---
customer: zq-acme
---
# Payroll export

The vault password for the payroll export is {MARKER}. Rotate it every quarter and never paste it in a page.

## Nightly batch

The payroll batch reads {MARKER} from the vault at midnight and posts the ledger totals to finance.
"""
VACATION = "# Vacation policy\n\nEmployees accrue two days of paid leave per month; unused days roll over once a year.\n"
HANDBOOK = "# Onboarding handbook\n\nNew staff get a laptop, a badge and a buddy on their first morning.\n"
TEXT_TYPES = ("text", "character varying", "jsonb", "json", "bytea", "ARRAY", "name")


def scan_database(url: str, marker: str) -> list[str]:
    """Every table.column of the database's own schemas holding ``marker`` in any row, cast to text."""
    found = []
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute(
            """SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
               WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND t.table_type = 'BASE TABLE'
               AND c.data_type = ANY(%s)""", (list(TEXT_TYPES),)).fetchall()
        assert columns
        for schema, table, column, kind in columns:
            as_text = (sql.SQL("encode({}, 'escape')") if kind == "bytea" else sql.SQL("{}::text")).format(
                sql.Identifier(column))
            hit = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{} WHERE {} LIKE %s)").format(
                sql.Identifier(schema), sql.Identifier(table), as_text), (f"%{marker}%",)).fetchone()[0]
            if hit:
                found.append(f"{table}.{column}")
    return found


def scan_sqlite(root: Path, marker: str) -> list[str]:
    """Every table.column of the SQLite databases below ``root`` (a Dagster instance's storage)
    holding ``marker``."""
    found, databases = [], [p for p in root.rglob("*.db") if p.is_file()]
    assert databases, f"no Dagster storage below {root}"
    for path in databases:
        with sqlite3.connect(path) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                for column in [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]:
                    hit = db.execute(f'SELECT 1 FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ? LIMIT 1',
                                     (f"%{marker}%",)).fetchone()
                    if hit:
                        found.append(f"{path.name}:{table}.{column}")
    return found


def scan_files(root: Path, marker: str, *skip: Path) -> list[Path]:
    """Files below ``root`` (except below ``skip``) holding ``marker``'s bytes."""
    needle = marker.encode()
    return [p for p in root.rglob("*") if p.is_file() and not any(p.is_relative_to(s) for s in skip)
            and needle in p.read_bytes()]


def _materialize(resources: dict, day: dt.date, instance: DagsterInstance, contextual: bool = False):
    result = materialize(ASSETS, resources={**resources, "embedder": EmbedderResource(contextual_headers=contextual)},
                         partition_key=day.isoformat(), instance=instance)
    assert result.success
    return {event.asset_key.to_user_string(): {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()}


def test_forget_leaves_no_text_of_the_document_anywhere(migrated, embedder, tmp_path, monkeypatch, capsys) -> None:
    """The real pipeline through Dagster (a persistent instance, the day batches on disk), two models'
    vectors of the document and a dead letter of an earlier copy; then `docvec forget --filter` and a
    scan of every text column of docvec's database and Dagster's, and every file, for the marker."""
    store = fresh_database(migrated, embedder.info.dim, f"docvec_forget_{os.getpid()}")
    assert store.database_url is not None
    landing, home = tmp_path / "landing", tmp_path / "home"
    day, before = SAMPLE_END, SAMPLE_END - dt.timedelta(days=1)
    (day_folder(landing, day) / "secret.md").write_text(SECRET)
    (day_folder(landing, day) / "vacation.md").write_text(VACATION)
    (day_folder(landing, before) / "secret.md").write_bytes(b"\x80\x81 " + MARKER.encode())  # not UTF-8
    (day_folder(landing, before) / "handbook.md").write_text(HANDBOOK)
    batches = home / "dagster" / "batches"
    resources = {"postgres": PostgresResource(database_url=store.database_url),
                 "source": SourceResource(landing_dir=str(landing)),
                 "retention_window": RetentionResource(as_of=day.isoformat()),
                 "batch_io_manager": DayBatchIOManager(base_dir=str(batches))}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster")) as instance:
        _materialize(resources, before, instance)
        _materialize(resources, day, instance)
        _materialize(resources, day, instance, contextual=True)  # a second model's (shadow) vectors of the day
        with connections.connect(store) as conn:
            assert conn.execute("SELECT count(DISTINCT model_id) FROM chunks WHERE doc_id = 'secret.md'").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) FROM dead_letters WHERE source_uri LIKE %s",
                                ("%/secret.md",)).fetchone()[0] == 1
        # The scans see the text while it is stored; Dagster's event log never had it.
        assert "chunks.text" in scan_database(store.database_url, MARKER)
        assert scan_files(batches, MARKER)
        assert scan_sqlite(tmp_path / "dagster", MARKER) == []

        monkeypatch.setenv("DATABASE_URL", store.database_url)
        code = main(["--home", str(home), "forget", "--filter", "customer=zq-acme", "--landing", str(landing)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "erased 1 documents (filter customer=zq-acme): secret.md" in out
        assert f"the landing zone still holds {before}/secret.md, {day}/secret.md" in out

        assert scan_database(store.database_url, MARKER) == []
        assert scan_sqlite(tmp_path / "dagster", MARKER) == []
        assert scan_files(tmp_path, MARKER, landing) == []
        assert scan_files(migrated.home, MARKER, migrated.pgdata) == []
        with connections.connect(store) as conn:
            for table in ("chunks", "documents"):
                assert conn.execute(f"SELECT count(*) FROM {table} WHERE doc_id = 'secret.md'").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM dead_letters WHERE source_uri LIKE '%secret%'").fetchone()[0] == 0
            assert term_stats_match_a_recount(conn), "BM25 statistics lost exactly the erased chunks' terms"
            [(ids, chosen, removed)] = conn.execute("SELECT doc_ids, filter, removed FROM erasures").fetchall()
            assert ids == ["secret.md"] and chosen == {"customer": "zq-acme"} and MARKER not in json.dumps(removed)
            assert removed["chunks"] > 0 and removed["documents"] == 1 and removed["dead_letters"] == 1
            assert len(removed["chunks_per_model"]) == 2
            served = model_registry.serving(conn)
            assert store_checks.day_rows_match(conn, None, (served.name, served.revision)).passed
            assert not [h for h in search.search(conn, None, "vault password payroll export", k=10, mode="text")
                        if h.doc_id == "secret.md"]
            assert [h.doc_id for h in search.search(conn, None, "paid leave per month", k=1, mode="text")] == \
                ["vacation.md"]

        # The landing still holds the file (as forget warned): the day's next run reads its files again
        # instead of judging it unchanged from a record that no longer describes it, and it comes back.
        again = _materialize(resources, day, instance)
        assert again["raw_documents"]["days_unchanged"] == 0 and again["raw_documents"]["days_not_read"] == 0
        assert again["chunk_embeddings"]["reused"] > 0, "the other document's vectors are reused"
        with connections.connect(store) as conn:
            assert conn.execute("SELECT count(*) FROM documents WHERE doc_id = 'secret.md'").fetchone()[0] == 1
            assert term_stats_match_a_recount(conn)


def _counts(conn: psycopg.Connection) -> tuple[int, ...]:
    return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                 for table in ("chunks", "documents", "term_stats", "dead_letters", "erasures"))


def test_an_id_that_is_not_stored_erases_nothing(migrated, loaded_sample, conn, capsys) -> None:
    before = _counts(conn)
    code = main(["--home", str(migrated.home), "forget", "runbooks/err-4471.md", "runbooks/no-such-page.md"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no document 'runbooks/no-such-page.md' is stored" in err and "nothing was erased" in err
    assert _counts(conn) == before
    with pytest.raises(ConfigError, match="metadata matches topic=no-such-topic"):
        forget.forget(conn, filters={"topic": "no-such-topic"})
    with pytest.raises(ConfigError, match="ids or --filter"):
        forget.forget(conn)
    with pytest.raises(ConfigError, match="ids or --filter"):
        forget.forget(conn, ["runbooks/err-4471.md"], {"topic": "databases"})
    assert _counts(conn) == before


def test_a_dry_run_shows_what_would_go_and_erases_nothing(migrated, loaded_sample, conn, capsys) -> None:
    before = _counts(conn)
    stored = conn.execute("SELECT count(*) FROM chunks WHERE doc_id = 'runbooks/err-4471.md'").fetchone()[0]
    assert stored > 0
    assert main(["--home", str(migrated.home), "forget", "--dry-run", "runbooks/err-4471.md"]) == 0
    out = capsys.readouterr().out
    assert "would erase 1 documents" in out and f"chunks:          {stored:,}" in out
    assert _counts(conn) == before


MODEL = ModelInfo(name="synthetic-forget", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")


def test_a_sealed_block_loses_the_rows_without_a_rebuild_and_keeps_its_index(migrated, embedder) -> None:
    """Four days sealed into HNSW-indexed blocks: forgetting a document present on each deletes its rows
    in place (the blocks keep their tables and indexes, valid), search still answers, and a later
    rebuild of the block (a reload of one of its days) does not carry the erased rows back."""
    store = fresh_database(migrated, embedder.info.dim, f"docvec_forget_blocks_{os.getpid()}")
    today = dt.date(2026, 3, 20)
    the_days = [today - dt.timedelta(days=n) for n in range(5, 1, -1)]
    policy = IndexSettings(exact_max_rows=40)
    with connections.connect(store) as conn:
        model_id = model_registry.register(conn, MODEL).id

        def load(day: dt.date, seed: int) -> None:
            days.replace_day(conn, synthetic_day(day, clustered(120, seed=seed), MODEL.name, MODEL.revision,
                                                 documents=30, doc_prefix="doc"), model_id)

        for n, day in enumerate(the_days):
            load(day, n)
        sealing.seal_days(conn, today, the_days[0], LayoutSettings(block_days=2), policy)
        blocks = {p.table: p for p in catalog.partitions(conn) if p.is_block}
        assert blocks and all(catalog.existing_vector_index(conn, t) for t in blocks)
        oids = dict(conn.execute("SELECT relname, oid FROM pg_class WHERE relname = ANY(%s)", (list(blocks),)).fetchall())
        rows = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

        report = forget.forget(conn, ["doc-3.md"])
        assert report.removed.chunks == 4 * 4 and len(report.removed.days) == 4
        assert report.removed.chunks_per_model == {model_id: 16}
        assert set(report.vacuumed) >= set(blocks)
        assert dict(conn.execute("SELECT relname, oid FROM pg_class WHERE relname = ANY(%s)",
                                 (list(blocks),)).fetchall()) == oids, "the blocks were not rebuilt"
        assert all(h.valid for h in catalog.vector_index_health(conn))
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == rows - 16
        assert term_stats_match_a_recount(conn)
        hits = search.search_vector(conn, clustered(1, seed=500)[0], model_id, k=10)
        assert len(hits) == 10 and "doc-3.md" not in {h.doc_id for h in hits}

        load(the_days[0], 0)  # rebuilds the block holding the day, carrying its other day over
        assert conn.execute("SELECT count(*) FROM chunks WHERE doc_id = 'doc-3.md' AND ingest_date <> %s",
                            (the_days[0],)).fetchone()[0] == 0


def test_day_batches_naming_a_document_are_found_even_across_read_blocks(tmp_path, monkeypatch) -> None:
    """The steps' pickled day batches hold each chunk's document id beside its text: every file naming
    the document goes (read block by block, an id cut by a block boundary included), the others stay."""
    import pickle

    monkeypatch.setattr(forget, "_BLOCK", 7)
    root = tmp_path / "batches"
    (root / "document_chunks").mkdir(parents=True)
    holding = root / "document_chunks" / "2026-03-07.pkl"
    holding.write_bytes(pickle.dumps({"doc_id": "finance/payroll.md", "text": "secret"}))
    other = root / "document_chunks" / "2026-03-06.pkl"
    other.write_bytes(pickle.dumps({"doc_id": "guides/setup.md", "text": "fine"}))
    assert forget._batch_files(root, ["finance/payroll.md"], delete=False) == [holding]
    assert holding.exists()
    assert forget._batch_files(root, ["finance/payroll.md"], delete=True) == [holding]
    assert not holding.exists() and other.exists()
    assert forget._batch_files(tmp_path / "none", ["x"], delete=True) == []


def test_a_filter_that_is_not_key_value_is_refused_before_anything(tmp_path, capsys) -> None:
    assert main(["--home", str(tmp_path), "forget", "--filter", "customer"]) == 2
    assert "is not key=value" in capsys.readouterr().err
