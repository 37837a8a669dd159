"""Each document's listing stamp (size and inode/times on disk, ETag or generation in a bucket).

When a day changes, its documents whose stamp is the same as at their last load keep their stored
chunks: only the files that changed are read, or downloaded from object storage, again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("source_stamp", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "source_stamp")
