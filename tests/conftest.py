"""Shared fixtures: one real embedded PostgreSQL and one real bundled model for the whole session."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pipeline import sample_corpus
from pipeline.ingest import landing_zone, stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.settings import Settings, load_settings
from pipeline.storage import db, embedded_server, migrate

# Sample days for the tests: fixed, so runs are reproducible (inside the partition range from 2026-01-01).
SAMPLE_END = dt.date(2026, 3, 7)


@pytest.fixture(scope="session")
def docvec_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's data dir and server: the embedded one started under it, or, with
    ``DOCVEC_TEST_DATABASE_URL`` (a superuser URL to any PostgreSQL with pgvector), two fresh databases
    on that server used through ``DATABASE_URL`` and ``DAGSTER_DATABASE_URL``, as a user would."""
    home = tmp_path_factory.mktemp("docvec_home")
    keys = ("DOCVEC_HOME", "DATABASE_URL", "DAGSTER_DATABASE_URL", "DOCVEC_PGBOUNCER", "DOCVEC_SEARCH_DATABASE_URL")
    previous = {key: os.environ.get(key) for key in keys}
    os.environ["DOCVEC_HOME"] = str(home)
    for key in keys[1:]:
        os.environ.pop(key, None)
    external = os.environ.get("DOCVEC_TEST_DATABASE_URL")
    names = [f"docvec_test_{os.getpid()}", f"docvec_test_{os.getpid()}_dagster"]
    if external:
        with psycopg.connect(external, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        os.environ["DATABASE_URL"] = db.with_database(external, names[0])
        os.environ["DAGSTER_DATABASE_URL"] = db.with_database(external, names[1])
    yield home
    if external:
        with psycopg.connect(external, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    else:
        embedded_server.stop_embedded_server(home / "pgdata")  # each session's server goes with it
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def settings(docvec_home: Path) -> Settings:
    return load_settings(home=docvec_home)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder()


@pytest.fixture(scope="session")
def migrated(settings: Settings, embedder: Embedder) -> Settings:
    migrate.upgrade(settings, embedder.info.dim)
    return settings


@pytest.fixture()
def conn(migrated: Settings) -> Iterator[psycopg.Connection]:
    with db.connect(migrated) as connection:
        yield connection


@pytest.fixture(scope="session")
def chunking_config(embedder: Embedder) -> ChunkingConfig:
    return ChunkingConfig(max_seq_length=embedder.info.max_seq_length)


@pytest.fixture(scope="session")
def sample_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("sample_landing")
    sample_corpus.write_sample_corpus(landing, end=SAMPLE_END)
    return landing


@pytest.fixture(scope="session")
def loaded_sample(migrated: Settings, sample_landing: Path, embedder: Embedder, chunking_config: ChunkingConfig) -> Path:
    """Every sample day chunked, embedded and loaded through the engine (once per session)."""

    with db.connect(migrated) as conn:
        tokenizer = embedder.backend_tokenizer()
        for day in landing_zone.list_days(sample_landing):
            chunks = stages.chunk_documents(stages.read_documents(sample_landing, day), tokenizer, chunking_config)
            stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
    return sample_landing


def fresh_database(base: Settings, dim: int, name: str) -> Settings:
    """A new, migrated database on the session's server, for tests that need the tables to themselves."""
    return migrate.migrated_scratch_database(base, dim, name)


def day_folder(landing: Path, day: dt.date) -> Path:
    folder = landing / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
