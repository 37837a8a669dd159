"""BM25 lexical index and contextual headers, replacing ``ts_rank_cd`` full text (0005).

``chunks`` gains ``context`` (the header a chunk was embedded with; '' for bare chunks), ``lexical_terms``
(its distinct term ids, GIN-indexed: the text branch's candidates), ``lexical`` (its BM25 term weights,
a pgvector ``sparsevec``) and ``prior`` (a search weight below 1 for link and term lists). ``term_stats``
holds each (model, day)'s document frequency per term, plus its chunk count under term -1: query-time
IDF over exactly the days stored (pipeline/storage/term_stats.py owns it). The generated ``text_search``
column and its GIN index go.

Existing chunks are indexed here, day by day, with the same code ingestion uses (pipeline/lexical), so
text search works on the upgraded store at once; their prior stays 1 (link shares were not recorded).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS chunks_text_search_idx")
    op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS text_search")
    op.add_column("chunks", sa.Column("context", sa.Text, nullable=False, server_default=""))
    op.add_column("chunks", sa.Column("lexical_terms", postgresql.ARRAY(sa.Integer), nullable=True))
    op.execute("ALTER TABLE chunks ADD COLUMN lexical sparsevec")
    op.add_column("chunks", sa.Column("prior", sa.REAL, nullable=False, server_default="1"))
    op.create_table(
        "term_stats",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("embedding_models.id"), nullable=False),
        sa.Column("ingest_date", sa.Date, nullable=False),
        sa.Column("term", sa.Integer, nullable=False),
        sa.Column("df", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "term", "ingest_date", name="term_stats_pkey"),
    )
    _index_existing_chunks()
    op.execute("CREATE INDEX chunks_lexical_terms_idx ON chunks USING gin (lexical_terms)")
    # Owned and readable like docvec's other tables, where migration 0004 could create its roles.
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_owner') THEN
                ALTER TABLE term_stats OWNER TO docvec_owner;
                GRANT SELECT ON term_stats TO docvec_reader;
            END IF;
        END $$""")


def _index_existing_chunks() -> None:
    if context.is_offline_mode():
        context.config.print_stdout(
            "-- docvec 0008: chunks already stored get no BM25 entries from this script; run `docvec migrate` "
            "against the database instead, or reload their days with force (ChunkingSettings force: true)")
        return
    from pipeline.storage.term_stats import index_stored_chunks

    index_stored_chunks(op.get_bind().connection.driver_connection)


def downgrade() -> None:
    op.drop_table("term_stats")
    op.execute("DROP INDEX IF EXISTS chunks_lexical_terms_idx")
    for column in ("prior", "lexical", "lexical_terms", "context"):
        op.drop_column("chunks", column)
    op.execute("ALTER TABLE chunks ADD COLUMN text_search tsvector "
               "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED")
    op.execute("CREATE INDEX chunks_text_search_idx ON chunks USING gin (text_search)")
