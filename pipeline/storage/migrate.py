"""Schema migrations through Alembic (scripts in ``migrations/``), driven from Python."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import psycopg
from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory

from pipeline.errors import ConfigError, PreconditionError
from pipeline.settings import Settings
from pipeline.storage.admin import ensure_databases, ensure_vector_extension, recreate_database, require_create_privilege
from pipeline.storage.connections import connect_kwargs
from pipeline.storage.queries import value
from pipeline.storage.urls import docvec_url
from pipeline.storage.vector_storage import VectorStorage, parse_storage, stored_column

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
VERSION_TABLE = "docvec_alembic_version"


def alembic_config(settings: Settings, embedding_dim: int, *, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    config.attributes["embedding_dim"] = embedding_dim
    config.attributes["vector_storage"] = parse_storage(settings.vector_storage).value
    config.attributes["url"] = url or docvec_url(settings, driver="postgresql+psycopg")
    return config


def upgrade(settings: Settings, embedding_dim: int, revision: str = "head") -> None:
    ensure_databases(settings)
    # Checked before Alembic runs, so a server without pgvector gets the error that says how to fix it.
    with psycopg.connect(docvec_url(settings), autocommit=True, **connect_kwargs(settings)) as conn:  # type: ignore[arg-type]
        ensure_vector_extension(conn)
        require_create_privilege(conn)
    command.upgrade(alembic_config(settings, embedding_dim), revision)


def migrated_scratch_database(base: Settings, embedding_dim: int, name: str) -> Settings:
    """A fresh database ``name`` on ``base``'s server, migrated to head, and settings that point at it."""
    url = recreate_database(base, name)
    scratch = Settings(home=base.home, database_url=url, dagster_database_url=url, pgbouncer=base.pgbouncer,
                       vector_storage=base.vector_storage)
    upgrade(scratch, embedding_dim)
    return scratch


def downgrade(settings: Settings, embedding_dim: int, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings, embedding_dim), revision)


def upgrade_sql(settings: Settings, embedding_dim: int, revision: str = "head") -> str:
    """The SQL ``upgrade`` would run, for DBAs who apply migrations themselves."""
    buffer = io.StringIO()
    config = alembic_config(settings, embedding_dim, url="postgresql+psycopg://")
    config.output_buffer = buffer
    command.upgrade(config, revision, sql=True)
    return buffer.getvalue()


@functools.cache
def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise PreconditionError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def require_current_schema(conn: psycopg.Connection) -> None:
    """Fail early, and say what to run, when the database is behind (or ahead of) this code."""
    exists = value(conn, "SELECT to_regclass('docvec_alembic_version')")
    current = conn.execute("SELECT version_num FROM docvec_alembic_version").fetchone() if exists else None
    version = current[0] if current else None
    if version != head_revision():
        raise PreconditionError(
            f"the database schema is at revision {version or 'none'} but this docvec expects {head_revision()}: "
            "run `docvec migrate` (or `docvec up`)"
        )


def migration_embedding_dim() -> int:
    """Inside a migration: the configured model's dimension (``docvec migrate`` passes it;
    plain ``alembic`` takes ``-x embedding_dim=N``). Never a literal in the migration itself."""
    given = context.config.attributes.get("embedding_dim")
    if given is None:
        given = context.get_x_argument(as_dictionary=True).get("embedding_dim")
    if given is None:
        raise ConfigError(
            "the embedding dimension is unknown: run `docvec migrate` (it reads it from the configured model) "
            "or pass `alembic -x embedding_dim=N upgrade head`."
        )
    dim = int(given)
    if not 0 < dim <= 16000:
        raise ConfigError(f"embedding dimension {dim} is out of range (pgvector vectors hold 1..16000 dims)")
    return dim


def migration_vector_storage() -> VectorStorage:
    """Inside a migration: what ``chunks.embedding`` is stored as (``DOCVEC_VECTOR_STORAGE``, which
    ``docvec migrate`` passes; plain ``alembic`` takes ``-x vector_storage=vector``; default halfvec)."""
    given = context.config.attributes.get("vector_storage")
    if given is None:
        given = context.get_x_argument(as_dictionary=True).get("vector_storage")
    return parse_storage(given)


def stored_vectors(settings: Settings) -> str:
    """What the migrated store holds its vectors as, for messages: ``halfvec(384)``."""
    with psycopg.connect(docvec_url(settings), autocommit=True, **connect_kwargs(settings)) as conn:  # type: ignore[arg-type]
        return stored_column(conn).type_name
