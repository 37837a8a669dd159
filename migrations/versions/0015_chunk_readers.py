"""Each chunk carries its document version's readers, kept equal to them by triggers, so the chunks policy
tests the row itself instead of probing ``documents`` once per chunk.

Migration 0012's chunks policy probed the version's ``documents`` row for every chunk a scan yielded. A
caller who may read 1% of a 1M-chunk store walks the HNSW indexes past ~100 unreadable candidates per
readable one, each paying that probe; an exact search over the caller's 10,000 readable chunks paid it
10,000 times (benchmarks/permissions_benchmark.py). Now:

- ``chunks.readers``: the readers of the chunk's version. Triggers on ``documents`` keep it equal to
  ``documents.readers``, inside PostgreSQL and in the same statement, whoever writes: a version inserted
  (a day's load, by COPY), its readers changed (a sidecar edit, a revocation propagated to older versions,
  an admin's UPDATE). Versions are only deleted together with their chunks (a day reload rebuilds the
  partition; erasure, history purges and retention delete or drop the chunks), and a chunk stored before
  its version row exists holds ``{}`` (the column's default: nobody) until the row is inserted.
- The chunks policies for ``docvec_reader`` become the documents policies' own conditions on that column:
  ``readers && (docvec_principals() || '{*}')`` and the tenant's ``tenant:<name>`` among the readers, the
  latter written (on documents too) as one containment the planner can estimate (see ``TENANT``).

Existing chunks get ``{*}`` without a table rewrite (a constant default is stored once, in the
catalog), then the chunks of versions readable by fewer than everyone get their version's readers and
chunks without a version get ``{}``, so what each role reads is unchanged.

Revision ID: 0015_chunk_readers
Revises: 0014_readers_index
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_chunk_readers"
down_revision: str | None = "0014_readers_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One UPDATE per day whose versions' readers were set, with the day as a constant, so it reads only the
# partition holding that day (a join on the transition table would scan every partition: a hash join has
# no run-time pruning). Only chunks whose readers differ are written: a day's load COPYs chunks that
# already carry their readers, so inserting its documents rows usually writes nothing, and an UPDATE of
# other columns (a source stamp) looks at no partition at all.
SYNC_FUNCTION = """
    CREATE OR REPLACE FUNCTION docvec_sync_chunk_readers() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        day date;
        days_changed text := 'SELECT DISTINCT ingest_date FROM changed_versions';
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            days_changed := 'SELECT DISTINCT n.ingest_date FROM changed_versions n JOIN previous_versions o
                             USING (ingest_date, doc_id) WHERE n.readers IS DISTINCT FROM o.readers';
        END IF;
        FOR day IN EXECUTE days_changed LOOP
            EXECUTE format(
                'UPDATE chunks c SET readers = v.readers FROM changed_versions v
                 WHERE c.ingest_date = %1$L AND v.ingest_date = %1$L AND c.doc_id = v.doc_id
                   AND c.readers IS DISTINCT FROM v.readers', day);
        END LOOP;
        RETURN NULL;
    END $$"""
TRIGGERS = {
    "documents_insert_chunk_readers": "AFTER INSERT ON documents REFERENCING NEW TABLE AS changed_versions",
    "documents_update_chunk_readers": ("AFTER UPDATE ON documents "
                                       "REFERENCING OLD TABLE AS previous_versions NEW TABLE AS changed_versions"),
}
READERS = "readers && (docvec_principals() || ''{*}''::text[])"
# The tenant condition as one array containment (``{}`` without a tenant: always true) rather than 0013's
# ``docvec_tenant() IS NULL OR 'tenant:' || docvec_tenant() = ANY(readers)``: the planner estimates an
# array operator against a value it can compute at planning (the session's setting) from the column's
# statistics, but gives the OR a fixed 0.5%, which made it expect ~10 rows where a caller reads all of
# them and join the latest-version rule by nested loops over the whole documents table (0.6 s on a
# 6,000-chunk store). Same rows admitted.
TENANT = ("readers @> CASE WHEN docvec_tenant() IS NULL THEN ''{}''::text[] "
          "ELSE ARRAY[''tenant:'' || docvec_tenant()] END")
TENANT_0013 = "docvec_tenant() IS NULL OR (''tenant:'' || docvec_tenant()) = ANY(readers)"
# Migration 0012's, restored by the downgrade.
PROBE = ("EXISTS (SELECT 1 FROM documents d WHERE d.ingest_date = chunks.ingest_date "
         "AND d.doc_id = chunks.doc_id OFFSET 0)")


def _documents_tenant_policy(tenant: str) -> None:
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                DROP POLICY IF EXISTS docvec_reader_tenant ON documents;
                EXECUTE 'CREATE POLICY docvec_reader_tenant ON documents AS RESTRICTIVE FOR ALL TO docvec_reader
                         USING ({tenant})';
            END IF;
        END $$""")


def _chunks_policies(rights: str, tenant: str | None) -> None:
    tenant_policy = ("EXECUTE 'CREATE POLICY docvec_reader_tenant ON chunks AS RESTRICTIVE FOR ALL TO docvec_reader "
                     f"USING ({tenant})';") if tenant else ""
    op.execute(f"""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
                DROP POLICY IF EXISTS docvec_reader_rights ON chunks;
                DROP POLICY IF EXISTS docvec_reader_tenant ON chunks;
                EXECUTE 'CREATE POLICY docvec_reader_rights ON chunks AS RESTRICTIVE FOR ALL TO docvec_reader
                         USING ({rights})';
                {tenant_policy}
            END IF;
        END $$""")


def upgrade() -> None:
    op.execute("ALTER TABLE chunks ADD COLUMN readers text[] NOT NULL DEFAULT '{*}'")
    op.execute("ALTER TABLE chunks ALTER COLUMN readers SET DEFAULT '{}'")
    op.execute("""
        UPDATE chunks c SET readers = d.readers FROM documents d
        WHERE d.ingest_date = c.ingest_date AND d.doc_id = c.doc_id AND d.readers <> '{*}'""")
    op.execute("""
        UPDATE chunks c SET readers = '{}'
        WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.ingest_date = c.ingest_date AND d.doc_id = c.doc_id)""")
    # A caller who may read few chunks is searched exactly over them (storage/readable_search.py): this
    # index finds them in each partition as one bitmap, read in physical order, instead of one index probe
    # per readable version per partition (10,110 chunks of 1M: 114 -> 65 ms; 1.5 MB, built in 1 s).
    op.execute("CREATE INDEX chunks_readers_idx ON chunks USING gin (readers)")
    op.execute(SYNC_FUNCTION)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION docvec_sync_chunk_readers()")
    _chunks_policies(READERS, TENANT)
    _documents_tenant_policy(TENANT)


def downgrade() -> None:
    _documents_tenant_policy(TENANT_0013)
    _chunks_policies(PROBE, None)
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON documents")
    op.execute("DROP FUNCTION IF EXISTS docvec_sync_chunk_readers()")
    op.execute("DROP INDEX IF EXISTS chunks_readers_idx")
    op.execute("ALTER TABLE chunks DROP COLUMN readers")
