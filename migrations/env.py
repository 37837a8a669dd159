"""Alembic environment: the URL and the embedding dimension come from docvec's settings, never a literal."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from pipeline.settings import load_settings
from pipeline.storage.connections import connect_kwargs
from pipeline.storage.urls import docvec_url

VERSION_TABLE = "docvec_alembic_version"


def _url() -> str:
    given = context.config.attributes.get("url")
    return given or docvec_url(load_settings(), driver="postgresql+psycopg")


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.attributes.get("url") or "postgresql+psycopg://",
        literal_binds=True,
        # A named paramstyle leaves '%' alone: psycopg's pyformat doubled every one in the printed SQL, so
        # format('%I', ...) in a DO block or a function body came out as format('%%I', ...).
        dialect_opts={"paramstyle": "named"},
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    settings = load_settings()
    engine = create_engine(_url(), poolclass=pool.NullPool, connect_args=connect_kwargs(settings))
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, version_table=VERSION_TABLE, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
