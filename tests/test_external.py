"""docvec against servers it did not start: one without pgvector, a user without privileges, and the
session's server behind PgBouncer in transaction mode."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import psycopg
import pytest
from dagster import materialize
from psycopg import sql
from sqlalchemy.engine import make_url

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.cli import main as cli
from pipeline.errors import DatabaseSetupError
from pipeline.indexing import builds
from pipeline.indexing.policy import Action, IndexSettings
from pipeline.ingest import landing_zone, stages
from pipeline.query import search
from pipeline.settings import Settings
from pipeline.storage import admin, catalog, connections, layout, migrate, model_registry, urls
from pipeline.storage import days as day_store
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support import pgbouncer
from tests.support.pg_cluster import (
    install_with_pgvector_labelled,
    install_without_pgvector,
    start_cluster,
)
from tests.support.sample import SAMPLE_END

# Every test here talks to PostgreSQL: several to a server of their own, without the session's fixtures.
pytestmark = pytest.mark.database


def test_a_server_without_pgvector_gets_the_fix(tmp_path, embedder, capsys, monkeypatch) -> None:
    cluster = start_cluster(tmp_path / "data", install=install_without_pgvector(tmp_path / "install"))
    try:
        settings = Settings(home=tmp_path, database_url=cluster.url(), dagster_database_url=cluster.url(),
                            pgbouncer=False)
        with pytest.raises(DatabaseSetupError, match="pgvector extension is not available") as info:
            migrate.upgrade(settings, embedder.info.dim)
        assert "apt install postgresql-NN-pgvector" in str(info.value)

        monkeypatch.setenv("DATABASE_URL", cluster.url())
        monkeypatch.setenv("DAGSTER_DATABASE_URL", cluster.url())
        assert cli.main(["migrate"]) == 2
        err = capsys.readouterr().err
        assert "pgvector extension is not available" in err and "Traceback" not in err
        assert cluster.password not in err
    finally:
        cluster.stop()


def test_a_server_with_an_old_pgvector_gets_the_fix(tmp_path, embedder) -> None:
    cluster = start_cluster(tmp_path / "data", install=install_with_pgvector_labelled(tmp_path / "install", "0.6.2"))
    try:
        settings = Settings(home=tmp_path, database_url=cluster.url(), dagster_database_url=cluster.url(),
                            pgbouncer=False)
        with pytest.raises(DatabaseSetupError, match=r"pgvector 0\.6\.2 is too old: docvec needs >= 0\.7\.0") as info:
            migrate.upgrade(settings, embedder.info.dim)
        assert "ALTER EXTENSION vector UPDATE" in str(info.value)
    finally:
        cluster.stop()


def test_a_user_without_privileges_is_told_which_grant_is_missing(migrated, embedder, tmp_path) -> None:
    role = f"docvec_limited_{os.getpid()}"
    name = f"docvec_noprivs_{os.getpid()}"
    owner_url = admin.recreate_database(migrated, name)
    with psycopg.connect(owner_url, autocommit=True) as superuser:
        superuser.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        superuser.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'limited-secret'").format(sql.Identifier(role)))
        superuser.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # PostgreSQL 14 still grants it
    limited = make_url(owner_url).set(username=role, password="limited-secret").render_as_string(hide_password=False)
    settings = Settings(home=tmp_path, database_url=limited, dagster_database_url=owner_url, pgbouncer=False)
    try:
        with pytest.raises(DatabaseSetupError, match="ask a superuser to run `CREATE EXTENSION vector;`"):
            migrate.upgrade(settings, embedder.info.dim)
        with psycopg.connect(owner_url, autocommit=True) as superuser:
            superuser.execute("CREATE EXTENSION vector")
        with pytest.raises(DatabaseSetupError, match=f"user {role} may not create tables") as info:
            migrate.upgrade(settings, embedder.info.dim)
        assert f"GRANT CREATE ON SCHEMA public TO {role};" in str(info.value)
        assert "limited-secret" not in str(info.value)
    finally:
        admin.drop_database(migrated, name)
        with psycopg.connect(urls.server_url(migrated), autocommit=True) as superuser:
            superuser.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_everything_works_through_pgbouncer_in_transaction_mode(migrated, embedder, sample_landing, tmp_path) -> None:
    """Migrations, the Dagster ingest assets (binary COPY, day swap, reruns), a CONCURRENTLY index build
    with its progress watcher, and filtered search, all through PgBouncer with prepared statements off."""
    name = f"docvec_via_pgbouncer_{os.getpid()}"
    direct = admin.recreate_database(migrated, name)
    days = [SAMPLE_END - dt.timedelta(days=1), SAMPLE_END]
    with pgbouncer.transaction_pool(urls.server_url(migrated), tmp_path / "bouncer") as template:
        url = template.format(database=name)
        settings = Settings(home=migrated.home, database_url=url, dagster_database_url=direct, pgbouncer=True)
        migrate.upgrade(settings, embedder.info.dim)

        resources = {
            "postgres": PostgresResource(database_url=url, pgbouncer=True),
            "embedder": EmbedderResource(),
            "source": SourceResource(landing_dir=str(sample_landing)),
            "retention_window": RetentionResource(as_of=SAMPLE_END.isoformat()),
            "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
        }
        assets = [raw_documents, document_chunks, chunk_embeddings, vector_store]
        for round_ in ("first", "rerun"):
            for day in days:
                result = materialize(assets, resources=resources, partition_key=day.isoformat())
                assert result.success, round_
                meta = result.asset_materializations_for_node("vector_store")[0].metadata
                assert meta["days_unchanged"].value == (1 if round_ == "rerun" else 0)

        with connections.connect(settings) as conn:
            assert conn.prepare_threshold is None, "prepared statements are off through the pooler"
            model_id = model_registry.serving(conn).id
            counts = [day_store.chunk_count(conn, day, model_id) for day in days]
            assert all(count > 0 for count in counts)
            assert conn.execute("SELECT count(*), count(DISTINCT chunk_id) FROM chunks").fetchone() == (sum(counts),) * 2

            logs: list[str] = []
            outcome = builds.maintain_partition(conn, layout.partition_name(days[-1]),
                                                      IndexSettings(exact_max_rows=10), log=logs.append, pooled=True)
            assert outcome.plan.action == Action.CREATE and outcome.index_name
            assert any("through a transaction pooler" in line for line in logs)
            existing = catalog.existing_vector_index(conn, layout.partition_name(days[-1]))
            assert existing is not None and existing.state.valid

            for _ in range(8):  # more than psycopg's default prepare threshold (5)
                hits = search.search(conn, embedder, "How do I keep sourdough starter alive?", k=5,
                                     since=days[0], until=days[-1])
                assert len(hits) == 5 and all(days[0] <= hit.ingest_date <= days[-1] for hit in hits)
    admin.drop_database(migrated, name)


def test_searches_go_to_a_streaming_read_replica(tmp_path, embedder, sample_landing, capsys, monkeypatch) -> None:
    """DOCVEC_SEARCH_DATABASE_URL sends `docvec search` to a hot standby (pg_basebackup -R) while
    ingestion keeps writing to the primary."""
    from pipeline.ingest.chunking import ChunkingConfig
    from tests.support.pg_cluster import start_replica

    primary = start_cluster(tmp_path / "primary")
    replica = None
    try:
        settings = Settings(home=tmp_path, database_url=primary.url("docvec_primary"),
                            dagster_database_url=primary.url("docvec_primary"), pgbouncer=False)
        with psycopg.connect(primary.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE docvec_primary")
        migrate.upgrade(settings, embedder.info.dim)
        config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length)
        with connections.connect(settings) as conn:
            day = landing_zone.list_days(sample_landing)[-1]
            chunks = stages.chunk_documents(stages.read_documents(sample_landing, day), embedder.backend_tokenizer(), config)
            stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
            primary_lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]

        replica = start_replica(primary, tmp_path / "replica")
        with psycopg.connect(replica.url("docvec_primary"), autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            for _ in range(100):
                if standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (primary_lsn,)).fetchone()[0]:
                    break
                time.sleep(0.1)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                standby.execute("DELETE FROM chunks")

        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        monkeypatch.setenv("DAGSTER_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("DOCVEC_SEARCH_DATABASE_URL", replica.url("docvec_primary"))
        assert cli.main(["search", "How do I keep sourdough starter alive?", "-k", "3", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)
        assert len(hits) == 3 and all(hit["ingest_date"] == day.isoformat() for hit in hits)
        with psycopg.connect(replica.url("docvec_primary")) as standby:  # the replica answered
            assert standby.execute("SELECT sum(idx_scan + seq_scan) FROM pg_stat_user_tables "
                                   "WHERE relname LIKE 'chunks_%'").fetchone()[0] > 0
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()
