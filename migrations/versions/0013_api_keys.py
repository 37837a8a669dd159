"""API keys for ``docvec serve`` and tenant isolation in row-level security (issue #28).

``api_keys``: one row per key an admin created (``docvec keys create``). The key itself is never stored:
only the SHA-256 of its random 32-byte secret (``secret_sha256``), which is enough for a secret of that
entropy (nothing to brute-force, so no slow password hash is needed). Owned by ``docvec_owner``, readable
by nobody else: ``docvec_reader`` (the search role, which a client-facing login may hold) can never read
a hash. ``docvec serve`` looks keys up through the owner connection.

Tenants: a second session setting, ``docvec.tenant`` (read by ``docvec_tenant()``), set with the
principals for a transaction. A restrictive policy on ``documents`` then admits only the versions whose
readers hold ``tenant:<name>``; chunks and tombstones follow their version (migration 0012), so a
tenant's search never reaches another tenant's documents. Unset or empty: no tenant restriction.

Revision ID: 0013_api_keys
Revises: 0012_permissions
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_api_keys"
down_revision: str | None = "0012_permissions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = """
    CREATE OR REPLACE FUNCTION docvec_tenant() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT nullif(current_setting('docvec.tenant', true), '')
    $$"""
TENANT_POLICY = "docvec_tenant() IS NULL OR (''tenant:'' || docvec_tenant()) = ANY(readers)"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("principals", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("tenant", sa.Text),
        sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
        sa.Column("rate_count", sa.Integer),
        sa.Column("rate_seconds", sa.Integer),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("revoked_at", sa.TIMESTAMP(timezone=True)),
        sa.CheckConstraint("octet_length(secret_sha256) = 32", name="api_keys_secret_sha256_check"),
        sa.CheckConstraint("(rate_count IS NULL) = (rate_seconds IS NULL) AND coalesce(rate_count, 1) > 0 "
                           "AND coalesce(rate_seconds, 1) > 0", name="api_keys_rate_check"),
    )
    op.execute("REVOKE ALL ON api_keys FROM PUBLIC")
    op.execute(TENANT)
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_owner') THEN
                ALTER TABLE api_keys OWNER TO docvec_owner;
                REVOKE ALL ON api_keys FROM docvec_reader;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                GRANT EXECUTE ON FUNCTION docvec_tenant() TO docvec_reader;
                EXECUTE 'CREATE POLICY docvec_reader_tenant ON documents AS RESTRICTIVE FOR ALL TO docvec_reader
                         USING ({TENANT_POLICY})';
            END IF;
        END $$""")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS docvec_reader_tenant ON documents")
    op.execute("DROP FUNCTION IF EXISTS docvec_tenant()")
    op.drop_table("api_keys")
