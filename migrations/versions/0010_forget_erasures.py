"""Erasures: one audit row per ``docvec forget`` (pipeline/storage/erasure.py owns it).

When it ran and by whom, which document ids (or which metadata filter chose them) and how many rows
of each kind it removed; never any text of the erased documents.

Revision ID: 0010_forget
Revises: 0009_tombstones
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_forget"
down_revision: str | None = "0009_tombstones"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("erased_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("erased_by", sa.Text, server_default=sa.text("current_user"), nullable=False),
        sa.Column("doc_ids", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("filter", postgresql.JSONB, nullable=True),
        sa.Column("removed", postgresql.JSONB, nullable=False),
    )
    # Owned like docvec's other tables, where migration 0004 could create its roles.
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_owner') THEN
                ALTER TABLE erasures OWNER TO docvec_owner;
            END IF;
        END $$""")


def downgrade() -> None:
    op.drop_table("erasures")
