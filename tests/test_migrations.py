"""Alembic upgrade → downgrade → upgrade on a real server, in a database of its own."""

from __future__ import annotations

import psycopg

from pipeline import migrate
from pipeline.settings import Settings
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
    assert TABLES <= tables(url)


def test_offline_sql_for_dbas(migrated: Settings) -> None:
    text = migrate.upgrade_sql(migrated, 384)
    assert "CREATE TABLE chunks" in text and "VECTOR(384)" in text.upper()
    assert "PARTITION BY RANGE (ingest_date)" in text


def test_upgrade_checks_pgvector_first(migrated: Settings) -> None:
    """The extension check that runs before every upgrade reports the installed version (0.8 here)."""
    from pipeline.db import ensure_vector_extension

    with psycopg.connect(migrate.docvec_url(migrated), autocommit=True) as conn:
        version = ensure_vector_extension(conn)
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 7)
