"""BM25 as docvec computes it: the terms a text is indexed by, the weights a chunk stores, and the
statistics that follow the store through loads, reloads, sealing and retention (real server)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipeline.indexing import sealing
from pipeline.indexing.policy import IndexSettings
from pipeline.lexical import bm25, listing
from pipeline.lexical.terms import STOP_WORDS, term_id, terms
from pipeline.query import branches, search
from pipeline.records import ModelInfo
from pipeline.storage import catalog, connections, days, layout, model_registry, retention, term_stats
from tests.support.databases import fresh_database
from tests.support.vectors import clustered, synthetic_day

MODEL = ModelInfo(name="lexical-test", revision="1", dim=384, max_seq_length=256, normalized=True, device="cpu")


@pytest.mark.parametrize(("text", "expected"), [
    ("os.path.splitext(path)", {"os.path.splitext", "path.splitext", "os", "path", "splitext"}),
    ("threading.Lock.acquire", {"threading.lock.acquire", "lock.acquire", "thread", "lock", "acquir"}),
    ("python -m venv --system-site-packages", {"python", "-m", "venv", "--system-site-packages", "system", "site"}),
    ("__post_init__", {"__post_init__", "post", "init"}),
    ("JSONDecodeError", {"jsondecodeerror", "json", "decod", "error"}),
    ("ERR-4471 and w:gz", {"err-4471", "err", "4471", "w:gz", "gz"}),
    ("PYTHONDONTWRITEBYTECODE", {"pythondontwritebytecode"}),
    ("Sorting the connections", {"sort", "connect"}),
])
def test_identifiers_are_indexed_whole_and_by_their_parts(text: str, expected: set[str]) -> None:
    found = set(terms(text))
    assert expected <= found, found
    assert not found & STOP_WORDS


def test_weights_saturate_normalise_length_and_count_titles() -> None:
    def score(entry: bm25.LexicalEntry, word: str) -> float:
        return dict(zip(entry.term_ids, entry.weights, strict=True)).get(term_id(word), 0.0)

    filler = " ".join(f"filler{n}" for n in range(40))
    once, many, long_once, titled = bm25.entries([
        bm25.chunk_term_counts(f"ledger {filler}"),
        bm25.chunk_term_counts(f"{'ledger ' * 10}{filler}"),
        bm25.chunk_term_counts(f"ledger {filler} {filler} {filler}"),
        bm25.chunk_term_counts(f"ledger {filler}", title="Ledger"),
    ])
    assert score(once, "ledger") < score(many, "ledger") < 10 * score(once, "ledger") < bm25.K1 + 1 + 10, \
        "more occurrences weigh more, with diminishing returns"
    assert score(long_once, "ledger") < score(once, "ledger"), "the same count weighs less in a longer chunk"
    assert score(titled, "ledger") > 1.5 * score(once, "ledger"), "a title occurrence counts three times"
    assert list(once.term_ids) == sorted(once.term_ids)


def test_link_lists_get_a_lower_prior() -> None:
    assert listing.prior(0.0) == listing.prior(listing.PROSE_LINK_SHARE) == 1.0
    assert listing.prior(0.5) == pytest.approx(0.75)
    assert listing.prior(0.95) == listing.LIST_PRIOR


def _day(day: dt.date, texts: list[str], seed: int):
    return synthetic_day(day, clustered(len(texts), seed=seed), MODEL.name, MODEL.revision, texts=texts,
                         documents=len(texts), doc_prefix=f"d{seed}")


def _frequencies(conn, model_id: int, *words: str) -> tuple[int, list[int]]:
    chunks, found = term_stats.frequencies(conn, model_id, [term_id(w) for w in words])
    return chunks, [found.get(term_id(w), 0) for w in words]


def test_statistics_follow_loads_reloads_sealing_and_retention(migrated, embedder) -> None:
    settings = fresh_database(migrated, embedder.info.dim, "docvec_lexical_stats")
    first = layout.aligned_block(dt.date(2026, 6, 1), 10)[0]
    dates = [first + dt.timedelta(days=n) for n in range(3)]
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, MODEL).id
        days.replace_day(conn, _day(dates[0], ["the ledger batch", "a ledger entry", "bees and honey"], 0), model_id)
        days.replace_day(conn, _day(dates[1], ["ledger reconciliation", "honey harvest"], 1), model_id)
        assert _frequencies(conn, model_id, "ledger", "honey", "harvest") == (5, [3, 2, 1])
        first_idf = branches.lexical_query(conn, "ledger", model_id).weights.values()[0]

        # Reloading a day replaces its statistics (its old terms go, its new ones count).
        days.replace_day(conn, _day(dates[1], ["honey harvest", "hive inspection", "smoker fuel"], 1), model_id)
        assert _frequencies(conn, model_id, "ledger", "honey", "hive") == (6, [2, 2, 1])
        assert branches.lexical_query(conn, "ledger", model_id).weights.values()[0] > first_idf, "rarer now"

        # Sealing days into a block moves rows, not statistics.
        days.replace_day(conn, _day(dates[2], ["ledger close"], 2), model_id)
        before = conn.execute("SELECT * FROM term_stats ORDER BY 1, 2, 3").fetchall()
        sealed = sealing.seal_days(conn, dates[2] + dt.timedelta(days=3), first, layout.LayoutSettings(),
                                   IndexSettings())
        assert sealed and catalog.partition_for(conn, dates[0]).table != layout.partition_name(dates[0])
        assert conn.execute("SELECT * FROM term_stats ORDER BY 1, 2, 3").fetchall() == before

        # Retention drops a day's statistics with its chunks.
        retention.apply_retention(conn, dates[0] + dt.timedelta(days=30), window_days=30)
        assert _frequencies(conn, model_id, "ledger", "honey") == (4, [1, 1])
        assert conn.execute("SELECT count(*) FROM term_stats WHERE ingest_date = %s", (dates[0],)).fetchone()[0] == 0
        hits = search.search_text(conn, "ledger", model_id)
        assert [h.text for h in hits] == ["ledger close"]


def test_text_search_ranks_by_bm25_with_identifiers_and_titles(migrated, embedder) -> None:
    settings = fresh_database(migrated, embedder.info.dim, "docvec_lexical_rank")
    day = dt.date(2026, 6, 20)
    texts = ["Call reconcile_ledger_batch(batch_id) after the nightly export.",
             "The ledger and the batch are reconciled by hand at month end.",
             "Batch jobs, ledgers and reconciliation: an overview of the finance tools.",
             "Nothing relevant: beekeeping notes about the spring honey flow."]
    with connections.connect(settings) as conn:
        model_id = model_registry.register(conn, MODEL).id
        days.replace_day(conn, _day(day, texts, 7), model_id)
        exact = search.search_text(conn, "reconcile_ledger_batch", model_id)
        assert exact[0].text == texts[0] and exact[0].text_score > 1.3 * exact[1].text_score, \
            "the whole identifier is rare and outweighs its common parts"
        words = search.search_text(conn, "reconcile the ledger batch", model_id)
        assert {h.text for h in words[:3]} == set(texts[:3]) and texts[3] not in {h.text for h in words}
        assert search.search_text(conn, "zymurgy", model_id) == []
        assert np.isfinite([h.text_score for h in words]).all()
