"""Alembic upgrade → downgrade → upgrade on a real server, in a database of its own."""

from __future__ import annotations

import json

import psycopg

from pipeline.lexical.bm25 import IMPACT_TERM, stored_term_ids
from pipeline.lexical.terms import TERM_SPACE, term_id
from pipeline.query import search
from pipeline.settings import Settings
from pipeline.storage import connections, migrate
from pipeline.storage.admin import drop_database, recreate_database
from tests.support.databases import fresh_database

TABLES = {"embedding_models", "documents", "chunks", "dead_letters"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'chunks\\_%'")}


def test_upgrade_downgrade_upgrade(migrated: Settings, embedder) -> None:
    probe = fresh_database(migrated, embedder.info.dim, "docvec_migration_probe")
    url = probe.database_url
    assert url is not None
    assert TABLES | {"docvec_alembic_version"} <= tables(url)
    with psycopg.connect(url) as conn:
        kind, typmod, storage = conn.execute(
            """SELECT c.relkind, a.atttypmod, a.attstorage FROM pg_class c
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding' WHERE c.relname = 'chunks'"""
        ).fetchone()
    assert (kind, typmod, storage) == ("p", embedder.info.dim, "p"), "partitioned, vector(model dim), PLAIN"

    migrate.downgrade(probe, embedder.info.dim, "base")
    assert tables(url) & TABLES == set()
    migrate.upgrade(probe, embedder.info.dim)
    assert tables(url) >= TABLES


def test_offline_sql_for_dbas(migrated: Settings) -> None:
    text = migrate.upgrade_sql(migrated, 384)
    assert "CREATE TABLE chunks" in text and "VECTOR(384)" in text.upper()
    assert "PARTITION BY RANGE (ingest_date)" in text


def test_the_offline_sql_builds_the_schema_a_dba_applies(migrated: Settings) -> None:
    """``docvec migrate --sql`` applied as printed (what a DBA does) reaches head: every '%' of a
    format() in a DO block or function body as written (psycopg's pyformat doubled them), the text
    search function created SECURITY DEFINER with its fixed search_path."""
    text = migrate.upgrade_sql(migrated, 384)
    assert "format('GRANT docvec_owner TO %I', current_user)" in text, "a DO block's format() as written"
    url = recreate_database(migrated, "docvec_offline_sql")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(text)  # no parameters: one simple query holding every statement
            version = conn.execute("SELECT version_num FROM docvec_alembic_version").fetchone()
            function = conn.execute("SELECT prosecdef, proconfig FROM pg_proc "
                                    "WHERE proname = 'docvec_readable_text_matches'").fetchone()
            # The triggers that copy a version's readers to its chunks (0015) run their format()ted UPDATE.
            conn.execute("INSERT INTO documents (ingest_date, doc_id, source_uri, content_sha256, bytes, chunk_count, "
                         "readers) VALUES ('2026-07-01', 'a.md', 'a.md', '0', 1, 0, '{group:hr}')")
            conn.execute("UPDATE documents SET readers = '{*}'")
            matches = conn.execute("SELECT count(*) FROM docvec_readable_text_matches('{1}', '[[1, 2]]', "
                                   "'{}/10'::sparsevec, 1, '2026-07-01', NULL, NULL, '[[{\"a\": 1}]]', 5)").fetchone()
    finally:
        drop_database(migrated, "docvec_offline_sql")
    assert version == (migrate.head_revision(),)
    assert function is not None and function[0] and function[1] == ["search_path=pg_catalog, pg_temp"]
    assert matches == (0,), "the function's own format() calls make a statement that runs"


def test_upgrade_checks_pgvector_first(migrated: Settings) -> None:
    """The extension check that runs before every upgrade reports the installed version (0.8 here)."""
    from pipeline.storage.admin import ensure_vector_extension

    with psycopg.connect(migrate.docvec_url(migrated), autocommit=True) as conn:
        version = ensure_vector_extension(conn)
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 7)


def _version(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM docvec_alembic_version").fetchone()
    return row[0] if row else None


def test_history_is_linear_and_every_revision_downgrades_one_step(migrated: Settings, embedder) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(migrated, embedder.info.dim))
    assert len(script.get_heads()) == 1 and len(script.get_bases()) == 1, "no branches"
    chain = [r.revision for r in script.walk_revisions()]  # head first
    assert all(isinstance(script.get_revision(r).down_revision, (str, type(None))) for r in chain), "no merges"

    probe = fresh_database(migrated, embedder.info.dim, "docvec_migration_steps")
    assert probe.database_url is not None
    for current, below in zip(chain, [*chain[1:], None], strict=True):
        assert _version(probe.database_url) == current
        migrate.downgrade(probe, embedder.info.dim, "-1")
        assert _version(probe.database_url) == below
    migrate.upgrade(probe, embedder.info.dim)
    assert _version(probe.database_url) == chain[0]


def test_no_migration_hard_codes_the_vector_dimension() -> None:
    import re

    for path in sorted((migrate.MIGRATIONS_DIR / "versions").glob("*.py")):
        source = path.read_text()
        assert not re.search(r"(?i)vector\s*\(\s*\d+\s*\)", source), f"{path.name} hard-codes a dimension"
        # The type, not the extension's name (``extname = 'vector'``, 0017 looks up its schema).
        if re.search(r"(?i)(?<!extname = ')\bVECTOR\b", source):
            # From the model, or (a type change of the existing column, 0016) from the column itself.
            assert "migration_embedding_dim()" in source or "a.atttypmod INTO" in source, \
                f"{path.name} must take the dimension from the model or the stored column"


def test_every_day_partition_gets_the_lexical_index_and_its_statistics(loaded_sample, conn) -> None:
    partitions = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'chunks'::regclass").fetchall()
    assert partitions
    for (partition,) in partitions:
        gin = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s "
                           "AND indexdef LIKE '%%USING gin (lexical_terms)%%'", (partition,)).fetchone()[0]
        assert gin == 1, partition
    assert conn.execute("SELECT count(*) FROM chunks WHERE lexical IS NULL OR lexical_terms IS NULL").fetchone()[0] == 0
    terms, weights = conn.execute("SELECT lexical_terms, lexical FROM chunks WHERE doc_id = 'runbooks/err-4471.md' "
                                  "LIMIT 1").fetchone()
    assert term_id("err-4471") in terms and term_id("4471") in terms  # the identifier whole and by its parts
    # Besides the term ids, the indexed terms hold impact markers (pipeline/lexical/bm25.py).
    assert sorted(stored_term_ids(terms)) == weights.indices() and all(w > 0 for w in weights.values())
    assert IMPACT_TERM in terms and any(t >= TERM_SPACE or t < -1 for t in terms if t != IMPACT_TERM)
    # The statistics are exactly a recount of the stored terms, per model and day.
    recount = conn.execute("""SELECT c.model_id, c.ingest_date, t, count(*) FROM chunks c, unnest(c.lexical_terms) t
                              GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").fetchall()
    stored = conn.execute("SELECT model_id, ingest_date, term, df FROM term_stats WHERE term <> -1 "
                          "ORDER BY 1, 2, 3").fetchall()
    assert stored == recount
    per_day = conn.execute("SELECT model_id, ingest_date, df FROM term_stats WHERE term = -1 ORDER BY 1, 2").fetchall()
    counted = conn.execute("SELECT model_id, ingest_date, count(*) FROM chunks GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    assert per_day == counted


def test_the_idf_lookup_can_read_the_statistics_from_the_key_alone(loaded_sample, conn) -> None:
    """Migration 0019: ``term_stats``'s key includes ``df``, so summing a query's document frequencies
    needs no heap fetch (an index-only scan; the planner's choice otherwise depends on the table's size)."""
    assert "INCLUDE (df)" in conn.execute("SELECT pg_get_indexdef('term_stats_pkey'::regclass)").fetchone()[0]
    for setting in ("enable_seqscan", "enable_indexscan", "enable_bitmapscan"):
        conn.execute(f"SET {setting} = off")
    try:
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN SELECT term, sum(df)::bigint FROM term_stats WHERE model_id = 1 AND term = ANY(%s) GROUP BY term",
            ([term_id("err-4471"), term_id("password"), -1],)).fetchall())
    finally:
        for setting in ("enable_seqscan", "enable_indexscan", "enable_bitmapscan"):
            conn.execute(f"RESET {setting}")
    assert "Index Only Scan using term_stats_pkey" in plan, plan


def test_upgrading_a_store_indexes_its_chunks_for_bm25(migrated: Settings, embedder) -> None:
    """Chunks stored before 0008 are given their BM25 entries and statistics by the upgrade itself."""
    probe = fresh_database(migrated, embedder.info.dim, "docvec_migration_lexical")
    migrate.downgrade(probe, embedder.info.dim, "0007")
    with psycopg.connect(probe.database_url) as conn:
        model = conn.execute("INSERT INTO embedding_models (name, revision, dim, normalized, max_seq_length) "
                             "VALUES ('m', '1', %s, true, 256) RETURNING id", (embedder.info.dim,)).fetchone()[0]
        conn.execute("CREATE TABLE chunks_20260101 PARTITION OF chunks FOR VALUES FROM ('2026-01-01') TO ('2026-01-02')")
        vector = "[" + ",".join(["0.05"] * embedder.info.dim) + "]"
        for n, (text, title) in enumerate([("Call reconcile_ledger_batch nightly.", "Ledger runbook"),
                                           ("Nothing about ledgers here.", "Other")]):
            conn.execute("INSERT INTO chunks (ingest_date, chunk_id, doc_id, seq, text, token_count, content_sha256, "
                         "metadata, model_id, embedding) VALUES ('2026-01-01', %s, %s, 0, %s, 8, %s, %s, %s, %s)",
                         (f"c{n}", f"d{n}.md", text, f"h{n}", json.dumps({"title": title}), model, vector))
    migrate.upgrade(probe, embedder.info.dim)
    with connections.connect(probe) as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE lexical IS NULL").fetchone()[0] == 0
        df = dict(conn.execute("SELECT term, df FROM term_stats WHERE model_id = %s", (model,)).fetchall())
        assert df[-1] == 2 and df[term_id("reconcile_ledger_batch")] == 1 and df[term_id("ledger")] == 2
        hits = search.search_text(conn, "reconcile_ledger_batch", model)
        # The identifier whole in d0; only one of its parts ("ledgers") in d1.
        assert [h.doc_id for h in hits] == ["d0.md", "d1.md"] and hits[0].score > 3 * hits[1].score
