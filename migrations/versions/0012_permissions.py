"""Per-document permissions, enforced by PostgreSQL row-level security on what the search role reads.

Each stored version of a document carries its ``readers``: the principals (users, groups, a tenant)
who may read it, ``*`` for everyone (what every document had before permissions existed, so nothing
changes until documents name readers). A search session sets its principals for the transaction
(``docvec.principals``, read by ``docvec_principals()``) as ``docvec_reader``; the policies then let it
read:

- ``documents``: the versions whose readers meet its principals (or hold ``*``);
- ``chunks``: the chunks of those versions (an index probe per chunk on the documents key), so nearest,
  BM25, neighbour and latest-version queries all see the same documents;
- ``document_deletions``: tombstones of documents it may read;
- ``dead_letters``: nothing (the paths of files that failed).

``term_stats`` stays readable: BM25 weighs query terms by how many chunks of the whole store hold them
(an aggregate; docs/RELIABILITY.md says what that reveals).

Owners (ingest, ``docvec`` admin commands) are not subject to the policies. ``docvec_owner`` is made a
member of ``docvec_reader`` so an admin login can search as a principal (``SET LOCAL ROLE``).

Revision ID: 0012_permissions
Revises: 0011_collections
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_permissions"
down_revision: str | None = "0011_collections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRINCIPALS = """
    CREATE OR REPLACE FUNCTION docvec_principals() RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT coalesce(nullif(current_setting('docvec.principals', true), ''), '{}')::text[]
    $$"""
POLICIES = {
    "documents": "readers && docvec_principals() OR '*' = ANY(readers)",
    # OFFSET 0 keeps this a probe of the documents key per chunk the scan yields: without it PostgreSQL 18
    # turns the EXISTS into a hashed subplan that reads every readable documents row once per partition
    # per query (1.5 s at 1M chunks; benchmarks/permissions_benchmark.py).
    "chunks": ("EXISTS (SELECT 1 FROM documents d WHERE d.ingest_date = chunks.ingest_date "
               "AND d.doc_id = chunks.doc_id OFFSET 0)"),
    "document_deletions": "EXISTS (SELECT 1 FROM documents d WHERE d.doc_id = document_deletions.doc_id)",
    "dead_letters": "false",
}


def upgrade() -> None:
    op.add_column("documents", sa.Column("readers", postgresql.ARRAY(sa.Text), nullable=False,
                                         server_default=sa.text("'{*}'::text[]")))
    op.execute(PRINCIPALS)
    for table, condition in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        # Every role but docvec_reader (and owners, which policies never bind) keeps reading as before.
        op.execute(f"CREATE POLICY docvec_everyone ON {table} USING (true)")
        op.execute(f"""
            DO $$ BEGIN
                IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                    EXECUTE 'CREATE POLICY docvec_reader_rights ON {table} AS RESTRICTIVE FOR ALL TO docvec_reader
                             USING ({condition.replace("'", "''")})';
                END IF;
            END $$""")
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                GRANT docvec_reader TO docvec_owner;
                GRANT EXECUTE ON FUNCTION docvec_principals() TO docvec_reader;
            END IF;
        END $$""")


def downgrade() -> None:
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS docvec_reader_rights ON {table}")
        op.execute(f"DROP POLICY IF EXISTS docvec_everyone ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS docvec_principals()")
    op.drop_column("documents", "readers")
