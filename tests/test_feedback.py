"""Pseudo-relevance feedback: which terms the first documents add to a query, and how the candidates are
scored again (pipeline/lexical/expansion.py, pipeline/query/feedback.py). The store's side of it (the
weights read, PostgreSQL's own inner product) is tested in tests/test_search.py."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.lexical.expansion import expanded_query
from pipeline.lexical.terms import _stem, surface_forms, term_id
from pipeline.query import feedback
from pipeline.query.hits import SearchHit

DAY = dt.date(2026, 3, 2)


def hit(doc: str, chunk: str, **scores: float) -> SearchHit:
    return SearchHit(rank=0, similarity=scores.get("similarity"), doc_id=doc, ingest_date=DAY, seq=0, chunk_id=chunk,
                     text=chunk, metadata={}, text_score=scores.get("text_score"))


def test_the_heaviest_feedback_terms_are_added_scaled_to_the_heaviest() -> None:
    query = {1: 2.0}  # term 1 with IDF 2
    idf = {1: 2.0, 2: 3.0, 3: 1.0, 4: 0.5}
    chunks = [{1: 1.0, 2: 1.0, 3: 1.0}, {2: 0.5, 4: 0.2}]
    # Heft (stored weight x IDF, summed): term 2: 3 + 1.5 = 4.5; term 1: 2; term 3: 1; term 4: 0.1.
    expanded = expanded_query(query, chunks, idf, weight=0.2, terms=3)
    assert expanded == pytest.approx({2: 0.2 * 1.0 * 3.0, 1: 2.0 + 0.2 * (2 / 4.5) * 2.0, 3: 0.2 * (1 / 4.5) * 1.0})
    assert 4 not in expanded, "only the 3 heaviest terms are added"
    assert expanded_query(query, chunks, idf, weight=0.0) == query, "weight 0 leaves the query as it was"
    assert expanded_query(query, [], idf, weight=0.2) == query, "no feedback chunks: no terms to add"
    # A term the statistics no longer count (every chunk holding it retired since) is not added.
    assert 2 not in expanded_query(query, chunks, {k: v for k, v in idf.items() if k != 2}, weight=0.2)


def test_equal_feedback_terms_are_chosen_the_same_way_every_time() -> None:
    idf = {7: 1.0, 5: 1.0, 9: 1.0}
    chunks = [{7: 1.0, 5: 1.0, 9: 1.0}]
    assert set(expanded_query({}, chunks, idf, weight=0.5, terms=2)) == {5, 7}, "ties go to the lower term id"


def test_feedback_comes_from_each_of_the_first_documents_best_chunk() -> None:
    ranked = [hit("P", "p1"), hit("P", "p2"), hit("Q", "q3"), hit("R", "r1"), hit("Q", "q1")]
    assert [h.chunk_id for h in feedback.feedback_chunks(ranked, 2)] == ["p1", "q3"]
    assert [h.chunk_id for h in feedback.feedback_chunks(ranked, 5)] == ["p1", "q3", "r1"]
    assert [h.chunk_id for h in feedback.pool([hit("P", "p1"), hit("Q", "q1")], [hit("Q", "q1"), hit("R", "r1")])] == [
        "p1", "q1", "r1"], "each candidate once"


def test_the_scored_candidates_become_the_text_branchs_hits() -> None:
    vector = [hit("P", "p1", similarity=0.9), hit("Q", "q1", similarity=0.8), hit("S", "s1", similarity=0.7)]
    text = [hit("Q", "q1", text_score=3.0), hit("R", "r1", text_score=2.0)]
    candidates = feedback.pool(vector, text)
    scores = {"p1": 2.375, "q1": 0.9375, "r1": 0.9375, "s1": 0.0, "x9": 5.0}
    found = feedback.text_hits(candidates, scores, k=10)
    # s1 holds none of the terms; x9 is no candidate (a score for it is ignored); q1 and r1 tie: by chunk id.
    assert [h.chunk_id for h in found] == ["p1", "q1", "r1"]
    assert [h.text_score for h in found] == [2.375, 0.9375, 0.9375]
    assert all(h.similarity is None and h.score == h.text_score for h in found), "text hits, as the text branch's"
    assert [h.rank for h in found] == [1, 2, 3]
    assert found[0].ingest_date == DAY and found[0].doc_id == "P", "the candidate's own version and document"
    assert [h.chunk_id for h in feedback.text_hits(candidates, scores, k=1)] == ["p1"], "the best k"


def test_the_added_terms_read_as_the_words_they_came_from() -> None:
    """--explain names the feedback's terms as they read in their chunks, not as stems or ids."""
    source = SearchHit(rank=1, similarity=0.5, doc_id="git-worktree.html", ingest_date=DAY, seq=0, chunk_id="w0",
                       text="Manage multiple working trees attached to the same repository. See git-worktree(1).",
                       metadata={"title": "git-worktree(1)", "section": "NAME"})
    added = [term_id(_stem("working")), term_id("git-worktree"), term_id(_stem("trees")), term_id("name"), 12345]
    words = feedback.FeedbackText([], added, [source]).words()
    assert words == ["working", "git-worktree", "trees", "name", "#12345"], "an id no chunk holds shows as itself"
    assert surface_forms("Stashing stashes") == {term_id(_stem("stashing")): "stashing"}
    # An identifier's parts read as the parts, not as their stems; a dotted tail reads as itself.
    forms = surface_forms("JSONDecodeError from os.path.splitext")
    assert forms[term_id("jsondecodeerror")] == "jsondecodeerror" and forms[term_id(_stem("decode"))] == "decode"
    assert _stem("decode") != "decode" and forms[term_id("path.splitext")] == "path.splitext"
    assert forms[term_id("splitext")] == "splitext" and forms[term_id("json")] == "json"


@given(st.dictionaries(st.integers(0, 50), st.floats(0.01, 10)),
       st.lists(st.dictionaries(st.integers(0, 50), st.floats(0.01, 2.2)), max_size=5),
       st.floats(0.0, 1.0), st.integers(1, 12))
def test_feedback_only_adds_weight(query: dict[int, float], chunks: list[dict[int, float]], weight: float,
                                   terms: int) -> None:
    """Whatever the feedback, a query term keeps at least its weight, and at most ``terms`` terms gain any."""
    idf = {term: 1.0 + term / 10 for chunk in chunks for term in chunk}
    expanded = expanded_query(query, chunks, idf, weight, terms)
    assert all(expanded[term] >= value for term, value in query.items())
    assert sum(1 for term, value in expanded.items() if value > query.get(term, 0.0)) <= terms
