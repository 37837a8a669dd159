"""``term_stats``'s primary key carries ``df``: the IDF lookups are index-only scans.

A search sums each query term's document frequency over the stored days (``term_stats.frequencies``): one
row per term and day. The primary key (model, term, day) found the rows, but ``df`` lived only in the
heap, so every row was a heap fetch on a page of its own. With hybrid search's feedback terms a lookup
reads a few hundred terms (the terms of the first documents' best chunks): at 1M chunks over 30 days
~190 terms are ~6,300 rows, a median 4.96 ms through the key and 1.34 ms as an index-only scan of a key
that includes ``df`` (benchmarks/RESULTS.md, the feedback terms). Rows a load just wrote are read from
the heap until autovacuum marks their pages all-visible; the others are not.

One index, as before: the key's columns and uniqueness are unchanged, ``df`` is stored beside them
(``INCLUDE``), so loads write no second index. Rebuilding the key holds ``term_stats``'s lock until it
is built (searches wait: seconds for the 600,000 rows of 1M chunks over 30 days). The downgrade restores the key without it.

Revision ID: 0019_term_stats_covering
Revises: 0018_one_reader_policy
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_term_stats_covering"
down_revision: str | None = "0018_one_reader_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(include: str) -> None:
    op.execute("ALTER TABLE term_stats DROP CONSTRAINT term_stats_pkey, "
               f"ADD CONSTRAINT term_stats_pkey PRIMARY KEY (model_id, term, ingest_date){include}")


def upgrade() -> None:
    _key(" INCLUDE (df)")


def downgrade() -> None:
    _key("")
