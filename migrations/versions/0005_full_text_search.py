"""Full-text search beside the vectors: a generated ``tsvector`` column on ``chunks`` and a GIN index.

Generated (STORED) so every load path fills it and it can never disagree with ``text``; the index is
declared on the partitioned parent, so every day partition gets its own GIN index (docvec's day swap
copies the parent's index definitions onto each staging table). English stemming; identifiers such as
``ERR-4471`` or ``reconcile_ledger_batch`` are split the same way in documents and queries.
Adding a stored column rewrites the existing day partitions once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_SEARCH_CONFIG = "english"


def upgrade() -> None:
    op.execute(f"ALTER TABLE chunks ADD COLUMN text_search tsvector "
               f"GENERATED ALWAYS AS (to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, text)) STORED")
    op.execute("CREATE INDEX chunks_text_search_idx ON chunks USING gin (text_search)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS chunks_text_search_idx")
    op.execute("ALTER TABLE chunks DROP COLUMN text_search")
