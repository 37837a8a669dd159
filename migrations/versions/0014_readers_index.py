"""A GIN index on ``documents.readers``, and the documents policy written so that it can use it.

Migration 0012's documents policy, ``readers && docvec_principals() OR '*' = ANY(readers)``, means the
same as ``readers && (docvec_principals() || '{*}')``, but only the second is one condition an index on
``readers`` can answer: PostgreSQL then finds the versions a caller may read in the GIN index (a bitmap
of them) instead of testing the policy on every row. A search as principals who may read few versions
starts from that bitmap (``storage/chunk_search.py``: an exact nearest search over their chunks instead
of walking the HNSW index past the many it may not read). The policy stays restrictive and binds every
statement of ``docvec_reader`` whatever plan runs it: the index changes how rows are found, never which.

Revision ID: 0014_readers_index
Revises: 0013_api_keys
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_readers_index"
down_revision: str | None = "0013_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXABLE = "readers && (docvec_principals() || ''{*}''::text[])"
ORIGINAL = "readers && docvec_principals() OR ''*'' = ANY(readers)"


def _documents_policy(condition: str) -> None:
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                DROP POLICY IF EXISTS docvec_reader_rights ON documents;
                EXECUTE 'CREATE POLICY docvec_reader_rights ON documents AS RESTRICTIVE FOR ALL TO docvec_reader
                         USING ({condition})';
            END IF;
        END $$""")


def upgrade() -> None:
    op.execute("CREATE INDEX documents_readers_idx ON documents USING gin (readers)")
    _documents_policy(INDEXABLE)


def downgrade() -> None:
    _documents_policy(ORIGINAL)
    op.execute("DROP INDEX IF EXISTS documents_readers_idx")
