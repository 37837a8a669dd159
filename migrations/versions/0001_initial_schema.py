"""Initial schema: models, documents, day-partitioned chunks with pgvector embeddings, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects import postgresql

from pipeline.storage.migrate import migration_embedding_dim

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _required(*columns: tuple[str, sa.types.TypeEngine | type]) -> list[sa.Column]:
    """NOT NULL columns, in the order given (which is the tables' column order)."""
    return [sa.Column(name, kind, nullable=False) for name, kind in columns]


def _metadata() -> sa.Column:
    return sa.Column("metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.TIMESTAMP(timezone=True), server_default=NOW, nullable=False)


def upgrade() -> None:
    dim = migration_embedding_dim()
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "embedding_models",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        *_required(("name", sa.Text), ("revision", sa.Text), ("dim", sa.Integer), ("normalized", sa.Boolean),
                   ("max_seq_length", sa.Integer)),
        _created_at(),
        sa.UniqueConstraint("name", "revision", name="embedding_models_name_revision_key"),
        sa.CheckConstraint("dim > 0", name="embedding_models_dim_positive"),
    )

    op.create_table(
        "documents",
        *_required(("ingest_date", sa.Date), ("doc_id", sa.Text), ("source_uri", sa.Text), ("content_sha256", sa.Text),
                   ("bytes", sa.BigInteger), ("chunk_count", sa.Integer)),
        _metadata(),
        _created_at(),
        sa.PrimaryKeyConstraint("ingest_date", "doc_id", name="documents_pkey"),
    )
    # Search keeps only each document's latest version: max(ingest_date) per doc_id.
    op.create_index("documents_doc_latest_idx", "documents", ["doc_id", sa.text("ingest_date DESC")])

    op.create_table(
        "chunks",
        *_required(("ingest_date", sa.Date), ("chunk_id", sa.Text), ("doc_id", sa.Text), ("seq", sa.Integer),
                   ("text", sa.Text), ("token_count", sa.Integer), ("content_sha256", sa.Text)),
        _metadata(),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("embedding_models.id"), nullable=False),
        sa.Column("embedding", VECTOR(dim), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("ingest_date", "chunk_id", name="chunks_pkey"),
        postgresql_partition_by="RANGE (ingest_date)",
    )
    # A 384-d vector is ~1.5 kB: kept inline (PLAIN) it is read with the row instead of through TOAST.
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN")
    # Finds an existing vector for unchanged content, so it is never embedded twice.
    op.create_index("chunks_model_content_idx", "chunks", ["model_id", "content_sha256"])
    op.create_index("chunks_doc_idx", "chunks", ["doc_id"])

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("ingest_date", sa.Date, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("first_seen", sa.TIMESTAMP(timezone=True), server_default=NOW, nullable=False),
        sa.Column("last_seen", sa.TIMESTAMP(timezone=True), server_default=NOW, nullable=False),
        sa.Column("resolved_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.UniqueConstraint("source_uri", "ingest_date", "stage", name="dead_letters_source_day_stage_key"),
    )
    op.create_index(
        "dead_letters_open_idx", "dead_letters", ["ingest_date"], postgresql_where=sa.text("resolved_at IS NULL")
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("chunks")  # drops every day partition with it
    op.drop_table("documents")
    op.drop_table("embedding_models")
