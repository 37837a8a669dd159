"""Alembic upgrade → downgrade → upgrade on a real server, in a database of its own."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pipeline import db, migrate
from pipeline.settings import Settings

TABLES = {"embedding_models", "documents", "chunks", "dead_letters"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'chunks\\_%'")}


def test_upgrade_downgrade_upgrade(migrated: Settings, embedder) -> None:
    server = db.server_url(migrated)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS docvec_migration_probe")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("docvec_migration_probe")))
    url = db.with_database(server, "docvec_migration_probe")
    probe = Settings(home=migrated.home, database_url=url, dagster_database_url=url, pgbouncer=False)

    migrate.upgrade(probe, embedder.info.dim)
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
