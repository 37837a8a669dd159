"""What each stored day was built from, split so an unchanged rerun need not read its files.

``source_signature`` (file names, sizes, inodes, change times) is cheap to recompute; when it matches,
``content_fingerprint`` (the contents' hashes and failures) stands in for reading every file.
Both are nullable: days loaded before this revision are read once more and then recorded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingest_days", sa.Column("source_signature", sa.Text, nullable=True))
    op.add_column("ingest_days", sa.Column("content_fingerprint", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("ingest_days", "content_fingerprint")
    op.drop_column("ingest_days", "source_signature")
