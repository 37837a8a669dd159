"""Search over the sample corpus with the real model: labelled queries find their documents."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline import sample_corpus, search
from pipeline.errors import ConfigError
from tests.conftest import SAMPLE_END


@pytest.mark.parametrize("query,expected", sample_corpus.LABELLED_QUERIES)
def test_labelled_query_finds_its_document(loaded_sample, conn, embedder, query: str, expected: str) -> None:
    hits = search.search(conn, embedder, query, k=3)
    assert hits[0].doc_id == expected, [(h.doc_id, round(h.similarity, 3)) for h in hits]
    assert 0.3 < hits[0].similarity <= 1.0
    assert hits[0].similarity >= hits[1].similarity >= hits[2].similarity


def test_metadata_and_date_filters(loaded_sample, conn, embedder) -> None:
    hits = search.search(conn, embedder, "bread crust and dough", k=20, filters={"topic": "baking", "author": "ana"})
    assert hits and all(h.metadata["topic"] == "baking" and h.metadata["author"] == "ana" for h in hits)
    since = SAMPLE_END - dt.timedelta(days=1)
    recent = search.search(conn, embedder, "volcano eruption", k=10, since=since)
    assert recent and all(h.ingest_date >= since for h in recent)
    none = search.search(conn, embedder, "volcano", k=5, filters={"topic": "no-such-topic"})
    assert none == []


def test_filters_are_bound_parameters_not_sql(loaded_sample, conn, embedder) -> None:
    hostile = {"topic": "x' OR '1'='1", "a'); DROP TABLE chunks; --": "1"}
    assert search.search(conn, embedder, "anything", k=5, filters=hostile) == []
    assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] > 0


@pytest.mark.parametrize("pairs", [["novalue"], ["=x"]])
def test_bad_filters_are_refused(pairs) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        search.parse_filters(pairs)


def test_parse_filters() -> None:
    assert search.parse_filters(["topic=jazz", "author = ana"]) == {"topic": "jazz", "author": "ana"}
