"""Living collections: tombstones written by a collection snapshot (origin ``collection``), and
``history_purges``, one row per retention run that purged history (pipeline/storage/history.py owns
it): the day before which history is gone, so a search as of an earlier day is refused rather than
answered from a partial past.

Revision ID: 0011_collections
Revises: 0010_forget
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_collections"
down_revision: str | None = "0010_forget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("document_deletions_origin_check", "document_deletions", type_="check")
    op.create_check_constraint("document_deletions_origin_check", "document_deletions",
                               "origin IN ('manifest', 'cli', 'collection')")
    op.create_table(
        "history_purges",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("purged_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("horizon", sa.Date, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("versions", sa.BigInteger, nullable=False),
        sa.Column("chunks", sa.BigInteger, nullable=False),
        sa.CheckConstraint("mode IN ('days', 'collection')", name="history_purges_mode_check"),
    )
    # Owned and readable like docvec's other tables, where migration 0004 could create its roles: search
    # reads the horizon to refuse an as-of day whose history is gone.
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_owner') THEN
                ALTER TABLE history_purges OWNER TO docvec_owner;
                GRANT SELECT ON history_purges TO docvec_reader;
            END IF;
        END $$""")


def downgrade() -> None:
    op.drop_table("history_purges")
    op.execute("DELETE FROM document_deletions WHERE origin = 'collection'")
    op.drop_constraint("document_deletions_origin_check", "document_deletions", type_="check")
    op.create_check_constraint("document_deletions_origin_check", "document_deletions",
                               "origin IN ('manifest', 'cli')")
