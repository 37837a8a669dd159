"""Tombstones: "document X was deleted as of day D", without editing or reloading older days.

``document_deletions`` holds one row per (document, day): search hides every version of the
document stored on that day or before (``NOT EXISTS`` a tombstone at or after the chunk's day); a
version landed on a later day is live again. ``origin`` says who wrote it: ``manifest`` (the day
folder's ``.docvec-deleted``, replaced whenever the day is loaded again) or ``cli`` (``docvec delete``,
kept when the day is reloaded). The primary key leads with ``doc_id`` so search's anti join probes it
per candidate; retention deletes a tombstone once it hides nothing (pipeline/storage/tombstones.py).

Revision ID: 0009_tombstones
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_tombstones"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "document_deletions",
        sa.Column("doc_id", sa.Text, nullable=False),
        sa.Column("ingest_date", sa.Date, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("doc_id", "ingest_date", name="document_deletions_pkey"),
        sa.CheckConstraint("origin IN ('manifest', 'cli')", name="document_deletions_origin_check"),
    )
    op.create_index("document_deletions_day_idx", "document_deletions", ["ingest_date"])
    # Owned and readable like docvec's other tables, where migration 0004 could create its roles.
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_owner') THEN
                ALTER TABLE document_deletions OWNER TO docvec_owner;
                GRANT SELECT ON document_deletions TO docvec_reader;
            END IF;
        END $$""")


def downgrade() -> None:
    op.drop_index("document_deletions_day_idx", table_name="document_deletions")
    op.drop_table("document_deletions")
