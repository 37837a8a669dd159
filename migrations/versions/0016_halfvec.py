"""Vectors stored as pgvector ``halfvec`` (16-bit floats), with their HNSW/IVFFlat indexes.

A 384-d ``vector`` takes 1,544 bytes, a ``halfvec`` 776: the chunks table and every partition's vector
index about halve, index builds read half the bytes, and recall@10 and MRR did not move
(benchmarks/halfvec_benchmark.py, benchmarks/RESULTS.md "halfvec storage"). New stores get halfvec;
``DOCVEC_VECTOR_STORAGE=vector`` (``-x vector_storage=vector`` for plain alembic) keeps 32-bit floats.

The upgrade converts whatever ``chunks.embedding`` is to the chosen type, keeping its dimension (read from
the column, so a store migrated for another model's dimension keeps it):

- each partition's vector index is remembered (its definition, name, build record) and dropped: an index
  of ``vector_cosine_ops`` cannot hold ``halfvec`` values;
- ``ALTER TABLE chunks ALTER COLUMN embedding TYPE ...`` rewrites every partition (day and sealed block)
  with the values rounded to the new type, then the column is PLAIN again (the type change resets it);
- each valid index is rebuilt under its own name and parameters with the new type's operator class; its
  build record keeps rows, model and search parameters but not its recall@10, which the next
  ``vector_index`` run measures again (``builds.index_recall``). Invalid ones (failed concurrent builds)
  are left for that run to build.

The whole store is rewritten and its indexes rebuilt, in one transaction: plan the upgrade of a large store
for a quiet hour (searches wait on the table's lock). The downgrade converts back to ``vector``; values keep
their 16-bit rounding. All of it runs as one DO block, so ``docvec migrate --sql`` prints it whole.

Revision ID: 0016_halfvec
Revises: 0015_chunk_readers
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

from pipeline.storage.migrate import migration_vector_storage

revision: str = "0016_halfvec"
down_revision: str | None = "0015_chunk_readers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ``%(target)s``: vector or halfvec. Every pgvector cosine/L2/inner-product operator class of an index on
# a partition of chunks becomes the target type's.
CONVERT = """
DO $$
DECLARE
    target constant text := '%(target)s';
    current_type text;
    dim integer;
    kept jsonb;
    found record;
BEGIN
    SELECT t.typname, a.atttypmod INTO current_type, dim
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = 'chunks'::regclass AND a.attname = 'embedding';
    IF current_type = target THEN
        RETURN;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', i.relname, 'valid', x.indisvalid, 'definition', pg_get_indexdef(i.oid),
               'comment', obj_description(i.oid, 'pg_class'))), '[]'::jsonb)
    INTO kept
    FROM pg_inherits h
    JOIN pg_index x ON x.indrelid = h.inhrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_am am ON am.oid = i.relam
    WHERE h.inhparent = 'chunks'::regclass AND am.amname IN ('hnsw', 'ivfflat');
    FOR found IN SELECT value FROM jsonb_array_elements(kept) LOOP
        EXECUTE format('DROP INDEX %%I', found.value ->> 'name');
    END LOOP;
    EXECUTE format('ALTER TABLE chunks ALTER COLUMN embedding TYPE %%s(%%s) USING embedding::%%s(%%s)',
                   target, dim, target, dim);
    ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN;
    FOR found IN SELECT value FROM jsonb_array_elements(kept) WHERE (value ->> 'valid')::boolean LOOP
        EXECUTE regexp_replace(found.value ->> 'definition', '\\m(vector|halfvec)_(cosine|l2|ip)_ops\\M',
                               target || '_\\2_ops');
        IF found.value ->> 'comment' LIKE '{%%' THEN
            EXECUTE format('COMMENT ON INDEX %%I IS %%L', found.value ->> 'name',
                           ((found.value ->> 'comment')::jsonb - 'recall_at_10')::text);
        END IF;
    END LOOP;
END $$"""


def upgrade() -> None:
    op.execute(CONVERT % {"target": migration_vector_storage().value})


def downgrade() -> None:
    op.execute(CONVERT % {"target": "vector"})
