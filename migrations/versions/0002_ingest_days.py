"""One row per loaded ingest day: its input fingerprint and what the load did.

The fingerprint (documents' content hashes, dead-lettered files, chunking settings, model) lets an
unchanged day be recognised before it is chunked, embedded or rewritten.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_days",
        sa.Column("ingest_date", sa.Date, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("embedding_models.id"), nullable=False),
        sa.Column("documents", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("embedded", sa.Integer, nullable=False),
        sa.Column("reused", sa.Integer, nullable=False),
        sa.Column("dead_letters", sa.Integer, nullable=False),
        sa.Column("loaded_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_days")
