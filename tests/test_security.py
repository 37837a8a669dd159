"""Least privilege and secrets: the roles migration 0004 sets up, and a database password that never
reaches Dagster's event log, metadata or docvec's own output."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from dagster import DagsterInstance, materialize, serialize_value
from psycopg import sql
from sqlalchemy.engine import make_url

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.cli import main as cli
from pipeline.indexing import builds
from pipeline.indexing.policy import IndexSettings
from pipeline.ingest import landing_zone, stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.query import search
from pipeline.settings import Settings
from pipeline.storage import admin, connections, layout, retention, urls
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support.databases import fresh_database
from tests.support.sample import SAMPLE_END


@pytest.fixture()
def login_roles(migrated):
    """Two login roles of the kind a DBA would create: one in docvec_loader, one in docvec_reader."""
    suffix = os.getpid()
    roles = {"loader": f"docvec_test_loader_{suffix}", "reader": f"docvec_test_reader_{suffix}"}
    password = uuid.uuid4().hex
    with psycopg.connect(urls.server_url(migrated), autocommit=True) as admin:
        for kind, role in roles.items():
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(role), sql.Literal(password), sql.Identifier(f"docvec_{kind}")))
    yield roles, password
    with psycopg.connect(urls.server_url(migrated), autocommit=True) as admin:
        for role in roles.values():
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def as_role(settings: Settings, role: str, password: str) -> Settings:
    url = make_url(settings.database_url).set(username=role, password=password).render_as_string(hide_password=False)
    return Settings(home=settings.home, database_url=url, dagster_database_url=settings.dagster_database_url,
                    pgbouncer=settings.pgbouncer)


def test_loader_writes_and_reader_only_searches(migrated, embedder, sample_landing, login_roles) -> None:
    roles, password = login_roles
    base = fresh_database(migrated, embedder.info.dim, "docvec_roles_probe")
    loader, reader = as_role(base, roles["loader"], password), as_role(base, roles["reader"], password)
    days = landing_zone.list_days(sample_landing)[-2:]
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length)

    with connections.connect(loader) as conn:  # ingest, rebuild a day, index it, drop a day by retention
        for day in days + days[-1:]:
            chunks = stages.chunk_documents(stages.read_documents(sample_landing, day), embedder.backend_tokenizer(), config)
            stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
        built = builds.maintain_partition(conn, layout.partition_name(days[-1]), IndexSettings(exact_max_rows=10))
        assert built.index_name
        dropped = retention.apply_retention(conn, days[-1], window_days=1)
        assert dropped.days == [days[0]]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE ROLE docvec_sneaky LOGIN")

    with connections.connect(reader, for_search=True) as conn:
        hits = search.search(conn, embedder, "How do I keep sourdough starter alive?", k=3)
        assert len(hits) == 3 and all(hit.ingest_date == days[-1] for hit in hits)
        for statement in ("INSERT INTO embedding_models (name, revision, dim, normalized, max_seq_length) "
                          "VALUES ('x', 'y', 3, true, 8)",
                          "DELETE FROM documents", "UPDATE chunks SET text = 'defaced'", "TRUNCATE chunks",
                          f"DROP TABLE {layout.partition_name(days[-1])}", "ALTER TABLE chunks ADD COLUMN x int"):
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.WrongObjectType)):
                conn.execute(statement)
    admin.drop_database(migrated, "docvec_roles_probe")


def test_the_database_password_never_reaches_logs_metadata_or_output(migrated, embedder, sample_landing, tmp_path,
                                                                     login_roles, capsys, monkeypatch) -> None:
    roles, password = login_roles
    base = fresh_database(migrated, embedder.info.dim, "docvec_secret_probe")
    loader = as_role(base, roles["loader"], password)
    day = SAMPLE_END
    resources = {
        "postgres": PostgresResource(database_url=loader.database_url),
        "embedder": EmbedderResource(),
        "source": SourceResource(landing_dir=str(sample_landing)),
        "retention_window": RetentionResource(as_of=SAMPLE_END.isoformat()),
        "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize([raw_documents, document_chunks, chunk_embeddings, vector_store], resources=resources,
                             partition_key=day.isoformat(), instance=instance)
        assert result.success
        stored = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
        run = serialize_value(instance.get_run_by_id(result.run_id))
    assert stored and all(password not in entry for entry in stored), "event log, metadata, logs"
    assert password not in run, "run record (config, tags)"

    monkeypatch.setenv("DATABASE_URL", loader.database_url)
    for command in (["status"], ["doctor"], ["search", "sourdough", "-k", "1"], ["migrate", "--sql"]):
        cli.main(command)
        captured = capsys.readouterr()
        assert password not in captured.out + captured.err, command
    bad = make_url(loader.database_url).set(port=1).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", bad)
    assert cli.main(["status"]) == 2
    assert password not in capsys.readouterr().err
    admin.drop_database(migrated, "docvec_secret_probe")
