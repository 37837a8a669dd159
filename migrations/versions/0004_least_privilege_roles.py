"""Least-privilege roles: ``docvec_owner`` owns docvec's tables, ``docvec_loader`` writes (it is a
member of the owner, because the day swap ATTACHes and DROPs partitions, which PostgreSQL allows only
to a table's owner), ``docvec_reader`` can only search. All three are NOLOGIN: grant them to login roles,
e.g. ``CREATE ROLE ingest LOGIN PASSWORD '…' IN ROLE docvec_loader``.

Roles are server-wide and may already exist (another docvec database on the same server): created only
when missing. When the migrating user may not create roles, this revision records itself and changes
nothing; `docvec migrate --sql` prints the statements for a DBA.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("embedding_models", "documents", "chunks", "dead_letters", "ingest_days", "docvec_alembic_version")
READER_TABLES = ("embedding_models", "documents", "chunks", "ingest_days", "dead_letters", "docvec_alembic_version")
ROLES = ("docvec_owner", "docvec_loader", "docvec_reader")


def _may_manage_roles() -> bool:
    if context.is_offline_mode():
        return True
    return bool(op.get_bind().execute(sa.text(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")).scalar())


def upgrade() -> None:
    if not _may_manage_roles():
        context.config.print_stdout(
            "docvec: roles docvec_owner/docvec_loader/docvec_reader not created: this user may not create "
            "roles (run `docvec migrate --sql` and give a DBA the 0004 statements)")
        return
    for role in ROLES:
        op.execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} NOLOGIN; END IF;
            END $$""")
    # The migrating user keeps altering docvec's tables in later revisions, so it joins the owner role.
    op.execute("DO $$ BEGIN EXECUTE format('GRANT docvec_owner TO %I', current_user); END $$")
    op.execute("GRANT docvec_owner TO docvec_loader")
    op.execute("DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO docvec_loader, docvec_reader', "
               "current_database()); END $$")
    op.execute("GRANT USAGE, CREATE ON SCHEMA public TO docvec_owner")
    op.execute("GRANT USAGE ON SCHEMA public TO docvec_reader")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} OWNER TO docvec_owner")
    # Day partitions already loaded: owned alike, so any loader can swap or drop them.
    op.execute("""
        DO $$ DECLARE part regclass; BEGIN
            FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'chunks'::regclass LOOP
                EXECUTE format('ALTER TABLE %s OWNER TO docvec_owner', part);
            END LOOP;
        END $$""")
    # A search reads through the partitioned parent: privileges on the parent are what count.
    op.execute(f"GRANT SELECT ON {', '.join(READER_TABLES)} TO docvec_reader")


def downgrade() -> None:
    if not _may_manage_roles():
        return
    exists = context.is_offline_mode() or op.get_bind().execute(sa.text(
        "SELECT count(*) FROM pg_roles WHERE rolname = 'docvec_owner'")).scalar()
    if not exists:
        return
    op.execute("DO $$ BEGIN EXECUTE format('REASSIGN OWNED BY docvec_owner TO %I', current_user); END $$")
    op.execute(f"REVOKE ALL ON {', '.join(READER_TABLES)} FROM docvec_reader")
    op.execute("REVOKE ALL ON SCHEMA public FROM docvec_owner, docvec_reader")
    op.execute("DO $$ BEGIN EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM docvec_loader, docvec_reader', "
               "current_database()); END $$")
    # Other docvec databases on the server may still use the roles: drop them only when nothing does.
    for role in reversed(ROLES):
        op.execute(f"""
            DO $$ BEGIN
                DROP ROLE IF EXISTS {role};
            EXCEPTION WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role {role} is still used by another database; kept';
            END $$""")
