"""The text branch's early stop (pipeline/lexical/pruning.py) returns exactly the BM25 top k that scoring
every chunk holding a query term returns: the bound argument on its own (property-based), and on a real
server against the complete scoring, with priors, scopes, erasure and days stored before impact markers."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.indexing import sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.lexical import bm25, pruning
from pipeline.lexical.terms import TERM_SPACE
from pipeline.query import branches
from pipeline.records import ModelInfo
from pipeline.storage import catalog, chunk_search, connections, days, erasure, layout, model_registry, term_stats
from pipeline.storage.chunk_search import LexicalTerms, Scope
from tests.support.databases import fresh_database
from tests.support.vectors import clustered, synthetic_day

MODEL = ModelInfo(name="pruning-test", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")
FIRST_DAY = layout.aligned_block(dt.date(2026, 7, 1), 10)[0]

# IDFs from a few values too: terms of equal frequency tie, and so do sums of their bounds.
_term = st.tuples(st.one_of(st.floats(0.05, 12.0), st.sampled_from([0.5, 1.0, 1.7, 3.0])), st.integers(1, 10_000),
                  st.integers(0, 10_000), st.integers(0, 10_000))


@settings(max_examples=500, deadline=None)
@given(st.lists(_term, min_size=1, max_size=8), st.lists(st.integers(0, 3), min_size=8, max_size=8),
       st.one_of(st.floats(0.0, 1.0), st.integers(0, 10_000)), st.booleans())
def test_every_chunk_that_can_reach_the_threshold_is_a_candidate(terms, states, where, tiered) -> None:
    """Whatever the terms, the chunk and the threshold: a chunk whose bound reaches the threshold holds
    the ids of one of the candidate lookups. A chunk's state per term: 0 absent, 1 held below the first
    tier, 2 in the first tier (its marker), 3 in the second (both markers). The threshold: a fraction of
    the highest bound, or one of the plan's levels."""
    statistics = [pruning.TermStatistics(n, idf, df, (min(low, df), min(high, low, df)))
                  for n, (idf, df, low, high) in enumerate(terms)]
    plan = pruning.PruningPlan(statistics, 10_000, tiered=tiered)
    chunk_states = {s.term: (states[s.term] if tiered else min(states[s.term], 1)) for s in statistics}
    held = ({t for t, state in chunk_states.items() if state}
            | {bm25.impact_marker(t, tier) for t, state in chunk_states.items() for tier in range(state - 1)})
    weights = (0.0, *bm25.IMPACT_TIERS, bm25.WEIGHT_CEILING) if tiered else (0.0, bm25.WEIGHT_CEILING)
    bound = sum(s.idf * weights[chunk_states[s.term]] for s in statistics)
    threshold = where * max(plan.levels) if isinstance(where, float) else plan.levels[where % len(plan.levels)]
    candidates = plan.candidates(threshold)
    matched = bool(held & set(candidates.any_of)) or any(set(ids) <= held for ids in candidates.all_of)
    if bound >= threshold and bound > 0:
        assert matched or (candidates.complete and held)
    assert candidates.complete or candidates.threshold == threshold


def test_levels_narrow_candidates_and_lowering_widens_them() -> None:
    statistics = [pruning.TermStatistics(1, 3.0, 50_000, (9_000, 5_000)),
                  pruning.TermStatistics(2, 2.5, 80_000, (20_000, 9_000)), pruning.TermStatistics(3, 6.0, 3_000, (500, 300))]
    plan = pruning.PruningPlan(statistics, 1_000_000, tiered=True)
    estimates = [plan.estimate(level) for level in plan.levels]
    assert estimates == sorted(estimates), "a lower threshold admits more chunks"
    first = plan.first(100)
    assert not first.complete and first.estimated >= 100 and first.all_of, "common words: conjunctions, not any word"
    wider = plan.lower(first)
    assert (wider.threshold < first.threshold and wider.estimated >= 16 * first.estimated) or wider.complete
    assert plan.candidates(0.0).complete and set(plan.candidates(0.0).any_of) == {1, 2, 3}


def test_lookups_leave_out_the_posting_lists_that_cost_more_to_read_than_they_save(monkeypatch) -> None:
    """bm25_benchmark's slowest all-common-word query at 1M chunks: its conjunctions drop the ids with the
    longest posting lists where the chunks that admits cost less to score (``SCORE_TO_READ``). They still
    select every chunk that can reach the threshold (the property test above), through fewer lookups
    reading far fewer postings; the word 45% of the chunks hold is read by none."""
    statistics = [pruning.TermStatistics(term, idf, df, tiers) for term, idf, df, tiers in (
        (1, 1.95, 142_648, (10_534, 16)), (2, 1.86, 156_189, (12_571, 25)), (3, 1.42, 240_631, (31_177, 161)),
        (4, 0.79, 452_410, (120_886, 3_146)))]
    postings = {s.term: s.df for s in statistics} | {bm25.impact_marker(s.term, tier): df for s in statistics
                                                      for tier, df in enumerate(s.tier_df)}

    def lookups(candidates: pruning.Candidates) -> list[tuple[int, ...]]:
        return [*((t,) for t in candidates.any_of), *candidates.all_of]

    lean = pruning.PruningPlan(statistics, 1_000_000, tiered=True).first(100)
    monkeypatch.setattr(pruning, "SCORE_TO_READ", float("inf"))  # every id of every minimal assignment
    full = pruning.PruningPlan(statistics, 1_000_000, tiered=True).first(100)
    assert lean.threshold == full.threshold and lean.estimated == full.estimated
    assert 4 not in {i for ids in lookups(lean) for i in ids} and 4 in {i for ids in lookups(full) for i in ids}
    assert len(lookups(lean)) < len(lookups(full)) / 2
    read = [sum(postings[i] for ids in lookups(c) for i in ids) for c in (lean, full)]
    assert read[0] < read[1] / 3, read
    assert all(any(set(mine) <= set(theirs) for mine in lookups(lean)) for theirs in lookups(full)), \
        "each full lookup's chunks are selected by a lean one"


def test_candidates_cover_the_lookups_that_hold_one_of_theirs() -> None:
    def lookups(any_of: tuple[int, ...] = (), all_of: tuple[tuple[int, ...], ...] = (), complete: bool = False):
        return pruning.Candidates(any_of, all_of, threshold=1.0, complete=complete, estimated=1.0)

    ours = lookups(any_of=(7,), all_of=((1, 2), (3, 4)))
    assert ours.covers(ours), "the same lookups select the same chunks"
    assert ours.covers(lookups(all_of=((7, 9), (1, 2, 5)))), "a chunk holding 7 and 9 holds 7"
    assert not ours.covers(lookups(all_of=((1, 3),))), "holding 1 and 3 is neither 1+2 nor 3+4"
    assert not ours.covers(lookups(any_of=(1,))), "holding 1 alone is not 1+2"
    assert not ours.covers(lookups(any_of=(7,), complete=True)), "every chunk holding a query term"
    assert lookups(any_of=(1,), complete=True).covers(ours)


def _texts(n: int, seed: int) -> list[str]:
    """Zipf-distributed words (a few very common, most rare), some titles repeating them."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(400)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    picks = rng.choice(len(vocabulary), size=(n, 30), p=weights / weights.sum())
    return [" ".join(vocabulary[j] for j in row[: int(rng.integers(5, 30))]) for row in picks]


def _queries(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ranks = rng.choice([0, 1, 2, 3, 5, 8, 13, 30, 80, 200, 399], size=int(rng.integers(1, 6)))
        out.append(" ".join(f"w{r}" for r in ranks))
    return out


def _exact(conn, lexical: branches.LexicalQuery, scope: Scope, k: int) -> list[tuple[str, float]]:
    """The complete scoring: every chunk holding any query term."""
    every = LexicalTerms(any_of=lexical.term_ids, weights=lexical.weights)
    return [(m.chunk_id, m.text_score) for m in chunk_search.lexical_matches(conn, every, scope, k)]


def _check_queries(conn, model_id: int, scopes: list[Scope], queries: list[str]) -> list[int]:
    """Compare the early stop with the complete scoring for every query, scope and k; the rounds used."""
    rounds = []
    for query, scope, k in itertools.product(queries, scopes, (1, 10, 50)):
        lexical = branches.lexical_query(conn, query, model_id)
        found = branches.text_rounds(conn, lexical, scope, k)
        got = [(m.chunk_id, m.text_score) for m in found.matches]
        assert got == _exact(conn, lexical, scope, k), (query, scope, k, found.rounds)
        # No round scores only chunks an earlier round scored: its top k would be that round's again.
        assert not any(earlier.covers(later) for earlier, later in itertools.pairwise(found.rounds)), found.rounds
        rounds.append(len(found.rounds) if not found.rounds[-1].complete else 0)
    return rounds


@pytest.fixture(scope="module")
def pruning_store(migrated, embedder):
    settings_ = fresh_database(migrated, embedder.info.dim, "docvec_bm25_pruning")
    with connections.connect(settings_) as conn:
        model_id = model_registry.register(conn, MODEL).id
        for n in range(3):
            texts = _texts(1_500, n)
            batch = synthetic_day(FIRST_DAY + dt.timedelta(days=n), clustered(len(texts), seed=n), MODEL.name,
                                  MODEL.revision, texts=texts, documents=300, doc_prefix="doc" if n else "old",
                                  metadata=lambda i: {"team": "a" if i % 3 else "b"})
            # Link lists score lower: a prior below 1 on one chunk in seven.
            chunks = [c if i % 7 else replace(c, prior=0.6) for i, c in enumerate(batch.chunks)]
            days.replace_day(conn, replace(batch, chunks=chunks), model_id)
    return settings_, model_id


def test_early_stop_returns_the_exact_top_k(pruning_store) -> None:
    settings_, model_id = pruning_store
    scopes = [Scope(model_id=model_id), Scope(model_id=model_id, filters={"team": "b"}),
              Scope(model_id=model_id, since=FIRST_DAY + dt.timedelta(days=2))]
    with connections.connect(settings_) as conn:
        assert branches.lexical_query(conn, "w1", model_id).plan.tiered
        rounds = _check_queries(conn, model_id, scopes, _queries(5, 40))
    assert sum(1 for r in rounds if r) > len(rounds) / 2, "most searches stop early, before the complete scoring"


def test_early_stop_stays_exact_after_sealing_erasure_and_on_days_without_markers(pruning_store) -> None:
    settings_, model_id = pruning_store
    scopes = [Scope(model_id=model_id)]
    with connections.connect(settings_) as conn:
        assert sealing.seal_days(conn, FIRST_DAY + dt.timedelta(days=20), FIRST_DAY, layout.LayoutSettings(),
                                 IndexSettings())
        assert catalog.partition_for(conn, FIRST_DAY).table != layout.partition_name(FIRST_DAY), "one block now"
        _check_queries(conn, model_id, scopes, _queries(8, 10))
        erasure.erase(conn, ["doc-1.md", "doc-2.md"])
        assert branches.lexical_query(conn, "w2", model_id).plan.tiered, "erasure lowers the marker count too"
        _check_queries(conn, model_id, scopes, _queries(6, 10))
        # A day indexed before impact markers existed: its chunks hold term ids only.
        with conn.transaction():
            conn.execute("UPDATE chunks SET lexical_terms = ARRAY(SELECT t FROM unnest(lexical_terms) t "
                         "WHERE t BETWEEN 0 AND %s) WHERE ingest_date = %s", (TERM_SPACE - 1, FIRST_DAY))
            term_stats.refresh_day(conn, FIRST_DAY, model_id)
        assert not branches.lexical_query(conn, "w2", model_id).plan.tiered
        _check_queries(conn, model_id, scopes, _queries(7, 10))


def test_a_round_budget_keeps_every_hit_above_its_threshold_exact(pruning_store, monkeypatch) -> None:
    """Where proving the last places would take more chunks than a round may score, the hits scoring at
    least the last round's threshold are still exactly the complete scoring's."""
    settings_, model_id = pruning_store
    monkeypatch.setattr(branches, "MAX_ROUND_CHUNKS", 60)
    stopped = 0
    with connections.connect(settings_) as conn:
        for query in _queries(9, 30):
            lexical = branches.lexical_query(conn, query, model_id)
            found = branches.text_rounds(conn, lexical, Scope(model_id=model_id), 10)
            exact = _exact(conn, lexical, Scope(model_id=model_id), 10)
            got = [(m.chunk_id, m.text_score) for m in found.matches]
            certain = [hit for hit in exact if hit[1] >= found.exact_down_to]
            assert got[:len(certain)] == certain, (query, found.exact_down_to)
            assert len(got) == len(exact), "as many hits as the complete scoring finds"
            stopped += found.exact_down_to > 0
            if found.exact_down_to:  # --explain says so
                plan = branches.explain_text(conn, query, model_id)
                assert "BM25 stopped at 60 chunks a round" in plan, plan[:400]
    assert stopped, "some searches reach the budget"


def test_a_pool_proves_its_first_places(pruning_store) -> None:
    """Hybrid's pool (k=50, proven=10): its first ten are the complete scoring's first ten, in order."""
    settings_, model_id = pruning_store
    with connections.connect(settings_) as conn:
        for query in _queries(10, 15):
            lexical = branches.lexical_query(conn, query, model_id)
            pool = branches.text_rounds(conn, lexical, Scope(model_id=model_id), 50, proven=10)
            exact = _exact(conn, lexical, Scope(model_id=model_id), 50)
            assert [(m.chunk_id, m.text_score) for m in pool.matches][:10] == exact[:10], query
            scores = [m.text_score for m in pool.matches]
            assert scores == sorted(scores, reverse=True), "the pool's tail follows, best first"
