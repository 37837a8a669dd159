"""Embedding-model lifecycle: which model search serves, and room for a second model's vectors per day.

* ``embedding_models.activated_at``: the serving model is the one activated last; the one before it is
  what ``docvec model rollback`` returns to. ``retired_at`` marks a model that was rolled back, so it is
  never switched to again automatically.
* ``chunks`` and ``ingest_days`` are keyed by model as well as day, so a day partition can hold the
  serving model's vectors and a new model's (shadow) vectors side by side until the switch.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("embedding_models", sa.Column("activated_at", sa.TIMESTAMP(timezone=True), nullable=True))
    op.add_column("embedding_models", sa.Column("retired_at", sa.TIMESTAMP(timezone=True), nullable=True))
    # An existing store serves the model its most recently loaded day was built with.
    op.execute("""
        UPDATE embedding_models SET activated_at = now()
        WHERE id = (SELECT model_id FROM ingest_days ORDER BY loaded_at DESC LIMIT 1)
    """)
    op.execute("ALTER TABLE chunks DROP CONSTRAINT chunks_pkey")
    op.execute("ALTER TABLE chunks ADD CONSTRAINT chunks_pkey PRIMARY KEY (ingest_date, model_id, chunk_id)")
    op.execute("ALTER TABLE ingest_days DROP CONSTRAINT ingest_days_pkey")
    op.execute("ALTER TABLE ingest_days ADD CONSTRAINT ingest_days_pkey PRIMARY KEY (ingest_date, model_id)")


def downgrade() -> None:
    # Going back to one model per day keeps the serving model's rows only.
    op.execute("""
        DELETE FROM chunks WHERE model_id <> COALESCE(
            (SELECT id FROM embedding_models WHERE activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1),
            model_id)
    """)
    op.execute("""
        DELETE FROM ingest_days WHERE model_id <> COALESCE(
            (SELECT id FROM embedding_models WHERE activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1),
            model_id)
    """)
    op.execute("ALTER TABLE ingest_days DROP CONSTRAINT ingest_days_pkey")
    op.execute("ALTER TABLE ingest_days ADD CONSTRAINT ingest_days_pkey PRIMARY KEY (ingest_date)")
    op.execute("ALTER TABLE chunks DROP CONSTRAINT chunks_pkey")
    op.execute("ALTER TABLE chunks ADD CONSTRAINT chunks_pkey PRIMARY KEY (ingest_date, chunk_id)")
    op.drop_column("embedding_models", "retired_at")
    op.drop_column("embedding_models", "activated_at")
