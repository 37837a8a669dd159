"""BM25 candidates for a search as principals through the GIN index on ``lexical_terms``: a SECURITY
DEFINER function that applies the chunks policies' own conditions.

Under row-level security PostgreSQL tests a query's own conditions after the policies' unless their
operators are leakproof, and no array operator is: ``lexical_terms && '{...}'`` could not be an index
condition below the readers policy, so a text search as principals read every chunk the caller may read
(a sequential scan: 2.9 s at 1M chunks where the owner's search took 27 ms). Marking ``&&`` leakproof
needs a superuser and would change it for every table of the database.

``docvec_readable_text_matches`` runs as the tables' owner (``docvec_owner``: policies do not bind it)
and finds the candidates in the GIN index as the owner's search does, keeping only the chunks whose
readers meet the session's principals (or hold ``*``) and hold ``tenant:<tenant>`` when the session has
one: the conditions of migration 0015's chunks policies, on the same column, with the same
``docvec_principals()`` and ``docvec_tenant()``. It returns each candidate's key and BM25 score, never
its text; the caller's statement reads the few chunks it keeps from ``chunks`` under the policies again
(storage/chunk_search.py). What a caller passes reaches its statement as bound values or as quoted
literals of typed values (int4 arrays, dates, jsonb arrays), never as SQL; its search_path is pg_catalog
alone and it names docvec's objects with their schemas (see ``FUNCTION``). ``docvec_reader`` may execute
it, PUBLIC may not. tests/test_permissions.py checks it returns exactly what the policies let each caller
read; tests/test_migrations.py that ``docvec migrate --sql`` creates it as written.

Revision ID: 0017_readable_text_matches
Revises: 0016_halfvec
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_readable_text_matches"
down_revision: str | None = "0016_halfvec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = ("docvec_readable_text_matches(int4[], jsonb, sparsevec, integer, date, date, date, jsonb, integer)")

# any_of: chunks holding any of these term ids; all_of: a JSON array of term-id arrays, chunks holding every
# id of one of them; filter_groups: a JSON array of groups of JSON objects, the metadata containing one
# object of every group (pipeline/storage/metadata_filters.py). The statement is planned for each call
# (EXECUTE), so dates prune partitions and the GIN lookups are costed on the real term ids.
#
# Its search_path is pg_catalog alone (pg_temp last, where no function or operator is looked up): an
# operator or function a caller could create in a schema they may write to (PUBLIC has CREATE on
# ``public`` up to PostgreSQL 14) never stands in for a built-in one, though one taking the exact types
# would win over pg_catalog's polymorphic ``&&`` if that schema were on the path. docvec's own objects are
# named with their schemas, fixed when the function is created (the DO block formats them in), so the
# whole function is written here with '%%' for each '%' its own format() calls keep.
FUNCTION = r"""
    DO $do$
    DECLARE
        tables text := current_schema();
        vectors text := (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                         WHERE e.extname = 'vector');
    BEGIN
        EXECUTE format($fn$
            CREATE OR REPLACE FUNCTION %1$I.docvec_readable_text_matches(
                any_of int4[], all_of jsonb, weights %2$I.sparsevec, model integer, since date, until date,
                as_of date, filter_groups jsonb, scan_limit integer)
            RETURNS TABLE (ingest_date date, chunk_id text, doc_id text, text_score double precision)
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
            DECLARE
                tables constant text := %1$L;
                vectors constant text := %2$L;
                lookups text[] := '{}';
                conditions text[];
                item jsonb;
            BEGIN
                conditions := ARRAY[
                    'c.model_id = $2',
                    format('c.readers && (%%1$I.docvec_principals() || ''{*}''::text[])', tables),
                    format('c.readers @> CASE WHEN %%1$I.docvec_tenant() IS NULL THEN ''{}''::text[] '
                           'ELSE ARRAY[''tenant:'' || %%1$I.docvec_tenant()] END', tables)];
                IF coalesce(cardinality(any_of), 0) > 0 THEN
                    lookups := lookups || format('c.lexical_terms && %%L::int4[]', any_of);
                END IF;
                FOR item IN SELECT value FROM jsonb_array_elements(coalesce(all_of, '[]')) LOOP
                    lookups := lookups || format('c.lexical_terms @> %%L::int4[]',
                                                 ARRAY(SELECT e::int4 FROM jsonb_array_elements_text(item) AS e));
                END LOOP;
                IF cardinality(lookups) = 0 THEN
                    RETURN;
                END IF;
                FOR item IN SELECT value FROM jsonb_array_elements(coalesce(filter_groups, '[]')) LOOP
                    conditions := conditions || format('c.metadata @> ANY(%%L::jsonb[])',
                                                       ARRAY(SELECT e FROM jsonb_array_elements(item) AS e));
                END LOOP;
                IF as_of IS NOT NULL THEN conditions := conditions || format('c.ingest_date <= %%L::date', as_of); END IF;
                IF since IS NOT NULL THEN conditions := conditions || format('c.ingest_date >= %%L::date', since); END IF;
                IF until IS NOT NULL THEN conditions := conditions || format('c.ingest_date <= %%L::date', until); END IF;
                RETURN QUERY EXECUTE format(
                    'SELECT c.ingest_date, c.chunk_id, c.doc_id, (c.lexical OPERATOR(%%1$I.<#>) $1) * -c.prior
                     FROM %%2$I.chunks c WHERE (%%3$s) AND %%4$s LIMIT $3',
                    vectors, tables, array_to_string(lookups, ' OR '), array_to_string(conditions, ' AND '))
                USING weights, model, scan_limit;
            END $body$
        $fn$, tables, vectors);
    END $do$"""
GRANTS = f"""
    DO $$ BEGIN
        REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_owner') THEN
            ALTER FUNCTION {SIGNATURE} OWNER TO docvec_owner;
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'docvec_reader') THEN
            GRANT EXECUTE ON FUNCTION {SIGNATURE} TO docvec_reader;
        END IF;
    END $$"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
