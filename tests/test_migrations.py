"""Alembic upgrade → downgrade → upgrade on a real server, in a database of its own."""

from __future__ import annotations

import psycopg

from pipeline.settings import Settings
from pipeline.storage import migrate
from tests.conftest import fresh_database

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


def test_upgrade_checks_pgvector_first(migrated: Settings) -> None:
    """The extension check that runs before every upgrade reports the installed version (0.8 here)."""
    from pipeline.storage.db import ensure_vector_extension

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
        if re.search(r"(?i)\bVECTOR\b", source):
            assert "migration_embedding_dim()" in source, f"{path.name} must take the dimension from the model"


def test_every_day_partition_gets_the_full_text_column_and_its_gin_index(loaded_sample, conn) -> None:
    partitions = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'chunks'::regclass").fetchall()
    assert partitions
    for (partition,) in partitions:
        gin = conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s "
                           "AND indexdef LIKE '%%USING gin (text_search)%%'",
                           (partition,)).fetchone()[0]
        assert gin == 1, partition
    generated = conn.execute("SELECT attgenerated FROM pg_attribute WHERE attrelid = 'chunks'::regclass "
                             "AND attname = 'text_search'").fetchone()[0]
    assert generated == "s", "a stored generated column: every load path fills it"
    sample = conn.execute("SELECT text_search::text FROM chunks WHERE doc_id = 'runbooks/err-4471.md' LIMIT 1").fetchone()[0]
    assert "'-4471'" in sample and "'err'" in sample
