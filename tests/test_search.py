"""Search over the sample corpus with the real model: labelled queries find their documents."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline import sample_corpus
from pipeline.errors import ConfigError
from pipeline.ingest import stages
from pipeline.query import fusion, hits, search
from tests.conftest import SAMPLE_END


@pytest.mark.parametrize("query,expected", [(q, d) for q, d, tag in sample_corpus.corpus().labelled
                                            if tag == "general"])
def test_labelled_query_finds_its_document(loaded_sample, conn, embedder, query: str, expected: str) -> None:
    hits = search.search(conn, embedder, query, k=3, mode="vector")
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


def test_text_mode_matches_exact_identifiers_and_hybrid_keeps_both_scores(loaded_sample, conn, embedder) -> None:
    text = search.search(conn, embedder, "ERR-4714", k=3, mode="text")
    assert text[0].doc_id == "runbooks/err-4714.md" and text[0].similarity is None and text[0].text_score > 0
    hybrid = search.search(conn, embedder, "ERR-4714", k=5, mode="hybrid")
    assert hybrid[0].doc_id == "runbooks/err-4714.md"
    assert hybrid[0].similarity is not None and hybrid[0].text_score is not None, "found by both branches"
    assert [h.document_score for h in hybrid] == sorted((h.document_score for h in hybrid), reverse=True)
    assert hybrid[0].document_score == pytest.approx(1.0), "first in both branches: both normalised scores 1"


@pytest.mark.parametrize("mode", search.MODES)
def test_filters_apply_to_every_mode(loaded_sample, conn, embedder, mode: str) -> None:
    since = SAMPLE_END - dt.timedelta(days=2)
    hits = search.search(conn, embedder, "ledger batch rejected by the payment gateway", k=10, mode=mode,
                         filters={"topic": "runbooks"}, since=since)
    assert hits and all(h.metadata["topic"] == "runbooks" and h.ingest_date >= since for h in hits)
    hostile = search.search(conn, embedder, "x' OR '1'='1'; DROP TABLE chunks; --", k=5, mode=mode,
                            filters={"topic": "x' OR '1'='1"})
    assert hostile == [] and conn.execute("SELECT count(*) FROM chunks").fetchone()[0] > 0


def test_per_document_limit_and_context_window(conn, migrated, tmp_path, embedder, chunking_config) -> None:

    day = dt.date(2026, 2, 27)
    folder = tmp_path / day.isoformat()
    folder.mkdir()
    paragraphs = [f"Section {i}. The lighthouse keeper logs the lamp's oil level, the wind and the passing "
                  f"ships at hour {i}. " * 6 for i in range(8)]
    (folder / "keeper-log.md").write_text("\n\n".join(paragraphs))
    chunks = stages.chunk_documents(stages.read_documents(tmp_path, day), embedder.backend_tokenizer(), chunking_config)
    assert len(chunks.chunks) >= 4
    stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))

    options = {"k": 5, "since": day, "until": day}
    several = search.search(conn, embedder, "lighthouse keeper oil level", mode="hybrid", **options)
    assert len({h.doc_id for h in several}) == 1 and len(several) > 1, "one document, many chunks"
    one = search.search(conn, embedder, "lighthouse keeper oil level", mode="hybrid", per_doc=1, **options)
    assert [h.doc_id for h in one] == ["keeper-log.md"]

    windowed = search.search(conn, embedder, "lighthouse keeper oil level", mode="vector", window=1, **options)
    for hit in windowed:
        seqs = [n["seq"] for n in hit.context]
        assert hit.seq in seqs and seqs == sorted(seqs)
        assert set(seqs) <= {hit.seq - 1, hit.seq, hit.seq + 1} and len(seqs) >= 2
        assert next(n["text"] for n in hit.context if n["seq"] == hit.seq) == hit.text


def test_reciprocal_rank_fusion() -> None:
    def hit(chunk: str, rank: int, **scores) -> hits.SearchHit:
        return hits.SearchHit(rank=rank, similarity=scores.get("similarity"), doc_id=chunk, ingest_date=SAMPLE_END,
                                seq=0, chunk_id=chunk, text=chunk, metadata={}, text_score=scores.get("text_score"))

    vector = [hit("a", 1, similarity=0.9), hit("b", 2, similarity=0.8), hit("c", 3, similarity=0.7)]
    text = [hit("c", 1, text_score=0.5), hit("d", 2, text_score=0.4)]
    fused = fusion.fuse(vector, text, rrf_k=60, method="rrf")
    assert [h.chunk_id for h in fused] == ["c", "a", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 63 + 1 / 61) == fused[0].document_score
    assert (fused[0].similarity, fused[0].text_score) == (0.7, 0.5)
    assert fused[3].similarity is None and fused[3].text_score == 0.4
    assert [h.rank for h in fused] == [1, 2, 3, 4]


def test_relative_fusion_ranks_documents_then_their_chunks() -> None:
    def hit(doc: str, chunk: str, rank: int, **scores) -> hits.SearchHit:
        return hits.SearchHit(rank=rank, similarity=scores.get("similarity"), doc_id=doc, ingest_date=SAMPLE_END,
                              seq=0, chunk_id=chunk, text=chunk, metadata={}, text_score=scores.get("text_score"))

    # The vector branch is sure of page P (0.8 against 0.4-0.5); BM25 prefers Q's chunks by a little.
    vector = [hit("P", "p1", 1, similarity=0.8), hit("Q", "q1", 2, similarity=0.5), hit("P", "p2", 3, similarity=0.45),
              hit("R", "r1", 4, similarity=0.4)]
    text = [hit("Q", "q1", 1, text_score=10.0), hit("Q", "q2", 2, text_score=9.5), hit("R", "r1", 3, text_score=7.0),
            hit("P", "p2", 4, text_score=6.0)]
    fused = fusion.fuse(vector, text, vector_weight=0.6)
    # Best chunk per document, min-max normalised per branch: vector P 1, Q 0.25, R 0; text Q 1, R 0.25, P 0.
    # P: 0.6 * 1 = 0.6; Q: 0.6 * 0.25 + 0.4 * 1 = 0.55; R: 0.4 * 0.25 = 0.1.
    assert [(h.doc_id, h.chunk_id) for h in fused] == [("P", "p1"), ("P", "p2"), ("Q", "q1"), ("Q", "q2"), ("R", "r1")]
    assert [h.document_score for h in fused] == pytest.approx([0.6, 0.6, 0.55, 0.55, 0.1])
    # By rank alone (RRF), Q's two first places in BM25 beat P's clear lead in the vector branch.
    assert fusion.fuse(vector, text, method="rrf")[0].doc_id == "Q"
    with pytest.raises(ConfigError, match="fusion must be one of"):
        fusion.fuse(vector, text, method="borda")


def test_unknown_mode_is_refused(loaded_sample, conn, embedder) -> None:
    with pytest.raises(ConfigError, match="vector, text, hybrid"):
        search.search(conn, embedder, "anything", mode="fuzzy")
