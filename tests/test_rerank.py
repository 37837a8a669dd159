"""The optional reranking stage (issue #30, item 5): a local cross-encoder reorders the first N fused
candidates; off unless DOCVEC_RERANKER names one. No cross-encoder weights are installable here, so
these tests build a tiny randomly initialised one (a small BERT with the bundled MiniLM's tokenizer)
and check the plumbing, not its quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.ingest.embedding import DEFAULT_MODEL, resolve_model_path
from pipeline.query import request
from pipeline.query.rerank import CrossEncoderReranker, check_cross_encoder, from_settings, passage
from pipeline.query.search_model import GivenModel
from pipeline.query.service import OneConnection, SearchService
from pipeline.settings import load_settings
from tests.support.cross_encoder import build_cross_encoder

QUERY = "payment gateway rejected the ledger batch"


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


def test_the_first_n_candidates_follow_the_cross_encoders_scores(loaded_sample, conn, embedder,
                                                                  tiny_cross_encoder) -> None:
    reranker = CrossEncoderReranker(tiny_cross_encoder, candidates=6)
    wanted = request.request(QUERY, k=20, group_by_document=True)
    before = SearchService(OneConnection(conn), GivenModel(embedder), reranker=False).search(wanted).hits
    result = SearchService(OneConnection(conn), GivenModel(embedder), reranker=reranker).search(wanted, explain=True)
    assert len(before) > 6
    head = before[:6]
    scores = reranker.scores(QUERY, [passage(hit) for hit in head])
    expected = [head[i].chunk_id for i in sorted(range(6), key=lambda i: -scores[i])]
    assert [h.chunk_id for h in result.hits[:6]] == expected != [h.chunk_id for h in head]
    assert [h.score for h in result.hits[:6]] == pytest.approx(sorted(scores, reverse=True))
    assert [h.chunk_id for h in result.hits[6:]] == [h.chunk_id for h in before[6:]], "only the first 6 reranked"
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert result.plans[-1].startswith("rerank: the first 6 of ") and str(tiny_cross_encoder.resolve()) in result.plans[-1]


def test_reranking_is_off_by_default_and_on_when_the_setting_names_a_directory(
        loaded_sample, conn, embedder, tiny_cross_encoder, monkeypatch) -> None:
    monkeypatch.delenv("DOCVEC_RERANKER", raising=False)
    wanted = request.request(QUERY, k=10)
    default = SearchService.over(conn, embedder).search(wanted, explain=True)
    off = SearchService(OneConnection(conn), GivenModel(embedder), reranker=False).search(wanted)
    assert [h.chunk_id for h in default.hits] == [h.chunk_id for h in off.hits]
    assert [h.score for h in default.hits] == [h.score for h in off.hits]
    assert not any(plan.startswith("rerank") for plan in default.plans)

    monkeypatch.setenv("DOCVEC_RERANKER", str(tiny_cross_encoder))
    monkeypatch.setenv("DOCVEC_RERANK_CANDIDATES", "5")
    configured = SearchService.over(conn, embedder).search(wanted, explain=True)
    assert configured.plans[-1].startswith("rerank: the first 5 of ")
    assert len(configured.hits) == len(off.hits)
    # Every service built from the same settings shares one reranker (search.search builds one per call).
    assert from_settings(load_settings()) is from_settings(load_settings())


def test_a_missing_or_wrong_directory_is_a_config_error_naming_it(tmp_path, monkeypatch) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match=f"{missing}.*does not exist.*DOCVEC_RERANKER"):
        check_cross_encoder(missing)
    bi_encoder = Path(resolve_model_path(DEFAULT_MODEL))
    with pytest.raises(ConfigError, match=f"{bi_encoder}.* is not a cross-encoder.*BertModel.*DOCVEC_RERANKER"):
        check_cross_encoder(bi_encoder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=f"{empty} has no readable config.json"):
        check_cross_encoder(empty)

    monkeypatch.setenv("DOCVEC_RERANKER", str(missing))
    with pytest.raises(ConfigError, match="does not exist"):
        SearchService.over(None)  # type: ignore[arg-type]  # refused before any connection is used
    monkeypatch.setenv("DOCVEC_RERANKER", str(bi_encoder))
    monkeypatch.setenv("DOCVEC_RERANK_CANDIDATES", "many")
    with pytest.raises(ConfigError, match="DOCVEC_RERANK_CANDIDATES must be a whole number"):
        from_settings(load_settings())
    monkeypatch.delenv("DOCVEC_RERANKER")
    assert from_settings(load_settings()) is None
