"""Search over the sample corpus with the real model: labelled queries find their documents."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from typing import Any

import pytest
from pgvector import SparseVector

from pipeline import sample_corpus
from pipeline.errors import ConfigError
from pipeline.ingest import stages
from pipeline.lexical import bm25, expansion
from pipeline.lexical.terms import TERM_SPACE
from pipeline.query import branches, feedback, fusion, hits, request, search
from pipeline.query.search_model import GivenModel
from pipeline.query.service import PooledConnections, SearchService
from pipeline.storage import connections, term_stats
from tests.support.fresh_process import run_light
from tests.support.sample import SAMPLE_END


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
        request.parse_pairs(pairs)


def test_parse_filters() -> None:
    assert request.parse_pairs(["topic=jazz", "author = ana"]) == {"topic": "jazz", "author": "ana"}


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


def test_openings_rescore_documents_and_keep_each_documents_chunks_in_order() -> None:
    def hit(doc: str, chunk: str, score: float) -> hits.SearchHit:
        return hits.SearchHit(rank=0, similarity=None, doc_id=doc, ingest_date=SAMPLE_END, seq=0, chunk_id=chunk,
                              text=chunk, metadata={}, document_score=score)

    fused = [hit("P", "p1", 0.6), hit("P", "p2", 0.6), hit("Q", "q2", 0.55), hit("Q", "q1", 0.55), hit("R", "r1", 0.1)]
    # Openings min-max normalised over the candidates: P 0, Q 1, R 0.5 (S is no candidate: not counted).
    openings = {"P": 0.2, "Q": 0.6, "R": 0.4, "S": 0.9}
    # P: 0.8 * 0.6 = 0.48; Q: 0.8 * 0.55 + 0.2 = 0.64; R: 0.8 * 0.1 + 0.2 * 0.5 = 0.18.
    rescored = fusion.with_openings(fused, openings, 0.2)
    assert [h.chunk_id for h in rescored] == ["q2", "q1", "p1", "p2", "r1"], "Q's chunks keep their own order"
    assert [h.document_score for h in rescored] == pytest.approx([0.64, 0.64, 0.48, 0.48, 0.18])
    assert [h.rank for h in rescored] == [1, 2, 3, 4, 5]
    assert fusion.with_openings(fused, openings, 0.0) == fused
    # A document whose opening is not given (unreadable, say) scores 0 there.
    missing = fusion.with_openings(fused, {"P": 0.2, "Q": 0.6}, 0.2)
    assert [h.document_score for h in missing][-1] == pytest.approx(0.08)


def test_hybrid_search_weighs_each_documents_own_opening(loaded_sample, conn, embedder) -> None:
    """A hybrid search reads the openings of the versions its candidates come from (their first chunks,
    with the similarity a vector search gives them) and ranks documents by ``with_openings``; weight 0
    leaves relative fusion's order as it was."""
    service = SearchService.over(conn, embedder)
    model_id = service.identify().id
    query = "how do I reset the database password"
    vector = embedder.encode([query])[0]
    fused = fusion.fuse(branches.search_vector(conn, vector, model_id, k=50),
                        branches.search_text(conn, query, model_id, k=50, proven=10))
    openings = branches.opening_similarities(conn, vector, fused, model_id)
    assert set(openings) == {h.doc_id for h in fused}
    for hit in fused:
        first = conn.execute("SELECT 1 - (embedding <=> %s::halfvec) FROM chunks WHERE doc_id = %s "
                             "AND ingest_date = %s AND seq = 0", (vector, hit.doc_id, hit.ingest_date)).fetchone()[0]
        assert openings[hit.doc_id] == pytest.approx(first, abs=1e-6), hit.doc_id

    def documents(found: list[hits.SearchHit]) -> list[tuple[str, float]]:
        return list(dict.fromkeys((h.doc_id, round(h.document_score or 0.0, 6)) for h in found))

    weighed = service.search_for(query, group_by_document=True, feedback_weight=0.0).hits
    assert documents(weighed) == documents(fusion.with_openings(fused, openings))[:len(documents(weighed))]
    plain = service.search_for(query, group_by_document=True, opening_weight=0.0, feedback_weight=0.0).hits
    assert documents(plain) == documents(fused)[:len(documents(plain))]


def test_hybrid_feedback_rescores_the_candidates_as_postgres_scores_them(loaded_sample, conn, embedder) -> None:
    """The feedback terms come from the first documents' best chunks, and every chunk either branch
    found is scored again: each score is PostgreSQL's own BM25 (``lexical <#> query`` times the prior)
    for the expanded query, in the chunk's own version. A hybrid search fuses that branch with the vector
    branch and the openings it read; weight 0 leaves it out (test above)."""
    service = SearchService.over(conn, embedder)
    model_id = service.identify().id
    query = "how do I tune ef_search and m for an hnsw vector index"
    vector = embedder.encode([query])[0]
    nearest = branches.search_vector(conn, vector, model_id, k=50)
    text = branches.search_text(conn, query, model_id, k=50, proven=10)
    fused = fusion.fuse(nearest, text)
    openings = branches.opening_similarities(conn, vector, fused, model_id)
    ranked = fusion.with_openings(fused, openings)
    feedback_text = branches.feedback_text(conn, query, nearest, text, ranked, model_id, 0.2, 50)
    again = feedback_text.hits

    # The expanded query, from the feedback chunks' weights as stored and the live term statistics.
    candidates = {h.chunk_id: h for h in [*nearest, *text]}
    versions = "(chunk_id, ingest_date) IN (SELECT * FROM unnest(%s::text[], %s::date[])) AND model_id = %s"

    def read(columns: str, chunk_ids: list[str], *values: Any) -> dict[str, Any]:
        days = [candidates[c].ingest_date for c in chunk_ids]
        return dict(conn.execute(f"SELECT chunk_id, {columns} FROM chunks WHERE {versions}",
                                 (*values, chunk_ids, days, model_id)).fetchall())

    stored = read("lexical", [h.chunk_id for h in feedback.feedback_chunks(ranked)])
    weights = [dict(zip(v.indices(), v.values(), strict=True)) for v in stored.values()]
    wanted = list(bm25.query_terms(query))
    total, frequencies = term_stats.frequencies(conn, model_id, [*wanted, *(t for w in weights for t in w)])
    idf = {term: bm25.idf(df, total) for term, df in frequencies.items()}
    query_idf = {t: idf[t] for t in wanted if t in idf}
    expanded = expansion.expanded_query(query_idf, weights, idf)
    assert len(stored) == expansion.FEEDBACK_DOCUMENTS and set(expanded) - set(wanted), "terms were added"
    assert set(feedback_text.added) == {t for t, v in expanded.items() if v > query_idf.get(t, 0.0)}
    assert len(feedback_text.added) == expansion.FEEDBACK_TERMS

    scores = read("(lexical <#> %s) * -prior", list(candidates), SparseVector(expanded, TERM_SPACE))
    expected = sorted(((c, s) for c, s in scores.items() if s > 0), key=lambda item: (-item[1], item[0]))
    assert [h.chunk_id for h in again] == [c for c, _ in expected][:50]
    assert [h.text_score for h in again] == pytest.approx([s for _, s in expected][:50], rel=1e-5)
    assert all(h.similarity is None and h.ingest_date == candidates[h.chunk_id].ingest_date for h in again)

    def documents(found: list[hits.SearchHit]) -> list[tuple[str, float]]:
        return list(dict.fromkeys((h.doc_id, round(h.document_score or 0.0, 6)) for h in found))

    searched = service.search_for(query, group_by_document=True).hits
    refused = fusion.with_openings(fusion.fuse(nearest, again), openings)
    assert documents(searched) == documents(refused)[:len(documents(searched))]


def test_feedback_leaves_searches_without_text_hits_and_other_fusions_as_they_were(loaded_sample, conn,
                                                                                  embedder) -> None:
    """No stored word in the query: no text branch to refine, so no feedback (one made of feedback terms
    alone would take the text branch's whole share, whatever its weight). RRF fusion takes none either."""
    service = SearchService.over(conn, embedder)

    def listed(query: str, **options: object) -> list[tuple[str, float]]:
        return [(h.chunk_id, round(h.document_score or 0.0, 9)) for h in service.search_for(query, **options).hits]

    assert branches.search_text(conn, "zqxvek wubbly", service.identify().id) == []
    assert listed("zqxvek wubbly") == listed("zqxvek wubbly", feedback_weight=0.0)
    query = "how do I tune ef_search and m for an hnsw vector index"
    rrf = service.search(request.request(query, fusion="rrf"), explain=True)
    assert [h.chunk_id for h in rrf.hits] == [
        h.chunk_id for h in service.search_for(query, fusion="rrf", feedback_weight=0.0).hits]
    assert "feedback" not in rrf.plans[-1] and "terms added" not in rrf.plans[-1]
    assert listed(query) != listed(query, feedback_weight=0.0), "with text hits, relative fusion takes feedback"


def test_openings_are_read_from_each_hits_own_version(conn, migrated, tmp_path, embedder, chunking_config) -> None:
    """A document edited on a later day opens differently: a search's openings are its latest version's,
    and where hits carry two versions of one document, the latest version's opening is the one kept."""
    first, second = dt.date(2026, 2, 23), dt.date(2026, 2, 24)  # before the sample's days, which other tests read
    body = "\n\n".join(f"## Part {i}\n\n" + f"The harbour log notes tides, moorings and cargo at hour {i}. " * 8
                         for i in range(4))
    openings = {first: "# Harbour guide\n\nLighthouse keepers trim the lamp wick at dusk.\n\n",
                second: "# Harbour guide\n\nBeekeepers smoke the hive before lifting the frames.\n\n"}
    for day, opening in openings.items():
        folder = tmp_path / day.isoformat()
        folder.mkdir()
        (folder / "harbour.md").write_text(opening + body)
        chunks = stages.chunk_documents(stages.read_documents(tmp_path, day), embedder.backend_tokenizer(),
                                        chunking_config)
        stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
    service = SearchService.over(conn, embedder)
    model_id = service.identify().id
    query = "smoking a beehive before lifting the frames"
    vector = embedder.encode([query])[0]

    def opening_on(day: dt.date) -> float:
        return conn.execute("SELECT 1 - (embedding <=> %s::halfvec) FROM chunks WHERE doc_id = 'harbour.md' "
                            "AND ingest_date = %s AND seq = 0 AND model_id = %s", (vector, day, model_id)).fetchone()[0]

    assert opening_on(second) > opening_on(first) + 0.1, "the two versions open differently"
    hits = service.search_for(query, since=first, until=second, k=5).hits
    assert hits and {h.ingest_date for h in hits} == {second}, "a search reads the latest version only"
    read = branches.opening_similarities(conn, vector, hits, model_id)
    assert read == {"harbour.md": pytest.approx(opening_on(second), abs=1e-6)}
    both = [replace(hits[0], ingest_date=first), hits[0], replace(hits[0], ingest_date=first)]
    assert branches.opening_similarities(conn, vector, both, model_id)["harbour.md"] == pytest.approx(
        opening_on(second), abs=1e-6)


def test_unknown_mode_or_option_is_refused(loaded_sample, conn, embedder) -> None:
    with pytest.raises(ConfigError, match="'vector', 'text' or 'hybrid'"):
        search.search(conn, embedder, "anything", mode="fuzzy")
    with pytest.raises(ConfigError, match=r"unknown search option\(s\) tuning"):
        search.search(conn, embedder, "anything", tuning=None)
    with pytest.raises(ConfigError, match="the search query is empty"):
        search.search(conn, embedder, "   ")


def test_text_search_from_python_needs_no_model(migrated, loaded_sample) -> None:
    """No model object, and in a fresh process neither torch nor sentence-transformers is imported."""
    out = run_light("from pipeline.query import search\n"
                    "from pipeline.settings import load_settings\n"
                    "from pipeline.storage import connections\n"
                    "with connections.connect(load_settings(), for_search=True) as conn:\n"
                    "    hits = search.search(conn, None, 'ERR-4714', mode='text', k=3)\n"
                    "print('FIRST', hits[0].doc_id, hits[0].similarity)\n", migrated.home)
    assert "FIRST runbooks/err-4714.md None" in out, out


def test_a_pooled_service_runs_the_text_branch_alongside_with_the_same_hits(migrated, loaded_sample, conn, embedder,
                                                                            monkeypatch) -> None:
    """The server's service runs a hybrid search's text branch on a second connection, in a thread of its
    own; its hits are exactly those of the same search run one branch after the other."""
    threads: list[str] = []
    text_branch = branches.search_text

    def watched(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return text_branch(*args, **kwargs)

    monkeypatch.setattr(branches, "search_text", watched)
    pool = connections.search_pool(migrated, min_size=2, max_size=2)
    pool.open(wait=True)  # both connections ready: the branch never falls back for want of a spare one
    pooled = SearchService(PooledConnections(pool), GivenModel(embedder))
    sequential = SearchService.over(conn, embedder)
    pooled.open()
    try:
        assert pooled.parallel_text and not sequential.parallel_text
        for query, options in (("ledger batch rejected by the payment gateway", {}),
                               ("ERR-4714", {"fusion": "rrf", "k": 5}),
                               ("lighthouse keeper", {"per_doc": 1, "window": 1}),
                               ("bees in winter", {"filters": {"topic": "beekeeping"}, "documents": True})):
            threads.clear()
            alongside = pooled.search_for(query, **options)
            assert threads and all(name.startswith("docvec-branch") for name in threads), threads
            threads.clear()
            one_by_one = sequential.search_for(query, **options)
            assert threads == [threading.current_thread().name]
            assert alongside.hits == one_by_one.hits and alongside.hits, query
            assert alongside.model == one_by_one.model == f"{embedder.info.name}@{embedder.info.revision}"
    finally:
        pooled.close()


def test_hybrid_searches_on_a_full_pool_never_wait_for_a_second_connection(loaded_sample, migrated, conn,
                                                                            embedder) -> None:
    """Requests that each hold the pool's only connection must not wait for a second one (they would all
    wait out the pool's timeout): the text branch then runs on the request's own connection, with the
    same hits, while more requests than connections are in flight."""
    pool = connections.search_pool(migrated, min_size=1, max_size=1, timeout=30)
    service = SearchService(PooledConnections(pool), GivenModel(embedder))
    service.open()
    expected = SearchService.over(conn, embedder).search_for("bees in winter").hits
    try:
        results: list[list] = []
        workers = [threading.Thread(target=lambda: results.append(service.search_for("bees in winter").hits))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert len(results) == 4 and all(hits == expected for hits in results)
    finally:
        service.close()


def test_explain_shows_each_branch_plan_for_the_same_search(loaded_sample, conn, embedder) -> None:
    service = SearchService.over(conn, embedder)
    hybrid = service.search(request.request("ERR-4714", mode="hybrid"), explain=True)
    assert len(hybrid.plans) == 3 and "'[384 dims]'::halfvec" in hybrid.plans[0] and hybrid.hits
    assert hybrid.plans[-1].startswith("order: documents by fused score, taking turns"), "how the list was ordered"
    assert "then each document's opening chunk weighed in at 0.3; then the text branch re-scored" in hybrid.plans[-1]
    assert "added at 0.2, and fused again (terms added or weighed more: " in hybrid.plans[-1], "and how it was scored"
    added = hybrid.plans[-1].rsplit("weighed more: ", 1)[1].rstrip(")").split(", ")
    assert len(added) == 5 and all(word.isalpha() for word in added), f"the chunks' own words: {added}"
    text = service.search(request.request("ERR-4714", mode="text"), explain=True)
    assert len(text.plans) == 2 and "dims" not in text.plans[0] and "lexical" in text.plans[0]
    assert service.search(request.request("ERR-4714", mode="vector")).plans == ()
