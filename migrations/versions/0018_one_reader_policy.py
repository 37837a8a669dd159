"""One restrictive policy per table for ``docvec_reader``: the readers and the tenant conditions in one.

Migrations 0013 and 0015 gave ``documents`` and ``chunks`` two restrictive policies, the readers
(``docvec_reader_rights``) and the tenant (``docvec_reader_tenant``). PostgreSQL gives each restrictive
policy of a table its own security level and tests a higher level's condition as an index condition only
when its operators are leakproof, which no array operator is. So the tenant's ``readers @> ...`` was a
filter on every row the readers condition found, computing ``docvec_tenant()`` (a ``current_setting``) per
row, where as an index condition it is computed once per scan: counting the 10,110 chunks a caller may
read of 1M took 13.5 ms with two policies, 5.6 ms with one (benchmarks/RESULTS.md, permissions). Both
conditions AND-ed in one policy admit exactly the rows the two admitted together, and the planner's
estimate of them (the readers condition's, times 1 for ``@> '{}'``) is unchanged.

Only where ``docvec_reader`` exists (migration 0004 creates it when the migrating user may create roles),
like the policies it replaces. The downgrade restores the two policies.

Revision ID: 0018_one_reader_policy
Revises: 0017_readable_text_matches
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_one_reader_policy"
down_revision: str | None = "0017_readable_text_matches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migration 0015's two conditions, quoted for EXECUTE inside the DO block.
READERS = "readers && (docvec_principals() || ''{*}''::text[])"
TENANT = ("readers @> CASE WHEN docvec_tenant() IS NULL THEN ''{}''::text[] "
          "ELSE ARRAY[''tenant:'' || docvec_tenant()] END")
TABLES = ("documents", "chunks")


def _policies(table: str, combined: bool) -> str:
    rights = f"({READERS}) AND ({TENANT})" if combined else READERS
    tenant = ("" if combined else
              f"EXECUTE 'CREATE POLICY docvec_reader_tenant ON {table} AS RESTRICTIVE FOR ALL TO docvec_reader "
              f"USING ({TENANT})';")
    return f"""
        DROP POLICY IF EXISTS docvec_reader_rights ON {table};
        DROP POLICY IF EXISTS docvec_reader_tenant ON {table};
        EXECUTE 'CREATE POLICY docvec_reader_rights ON {table} AS RESTRICTIVE FOR ALL TO docvec_reader
                 USING ({rights})';
        {tenant}"""


def _apply(combined: bool) -> None:
    statements = "".join(_policies(table, combined) for table in TABLES)
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                {statements}
            END IF;
        END $$""")


def upgrade() -> None:
    _apply(combined=True)


def downgrade() -> None:
    _apply(combined=False)
