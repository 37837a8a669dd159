"""The ONNX Runtime backends against the real bundled model: same vectors as torch (onnx), close ones
under their own revision (onnx-int8), made once from local files and reused, bad settings refused."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline import sample_corpus
from pipeline.errors import ConfigError
from pipeline.ingest import embedding
from pipeline.ingest.embedding import Embedder, model_identity
from pipeline.query import search_model
from pipeline.query.hits import SearchHit
from pipeline.query.request import request
from pipeline.query.search_model import QUERY_BACKENDS, ServedModel, query_backend
from pipeline.query.service import OneConnection, SearchService
from pipeline.storage.model_registry import StoredModel

TEXTS = [
    "PostgreSQL drops a day partition in milliseconds instead of deleting its rows.",
    "HNSW builds a navigable small-world graph; ef_search trades recall for latency.",
    "数据库索引 with emoji 🚀 and code: def f(x): return x ** 2",
    "a",
    "word " * 400,  # past the 256-token limit: truncated the same way as torch
] + [q["query"] for q in sample_corpus.labelled_queries()]


# Every test here constructs an Embedder (the ones without the embedder fixture too).
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_models")


def test_onnx_reproduces_torch_and_int8_stays_close(embedder, export_dir) -> None:
    reference = embedder.encode(TEXTS)
    onnx = Embedder(backend="onnx", export_dir=export_dir)
    assert onnx.info.revision == embedder.info.revision, "same vectors, same model revision"
    assert float((onnx.encode(TEXTS) * reference).sum(axis=1).min()) > 0.9999

    int8 = Embedder(backend="onnx-int8", export_dir=export_dir)
    assert int8.info.revision == f"{embedder.info.revision}+int8", "int8 vectors are recorded as their own revision"
    assert model_identity(backend="onnx-int8") == (int8.info.name, int8.info.revision)
    vectors = int8.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.mean() >= 0.985 and cosine.min() >= 0.95, cosine


def test_the_export_is_made_once_and_reused(export_dir) -> None:
    Embedder(backend="onnx-int8", export_dir=export_dir)
    files = {p: p.stat().st_mtime_ns for p in export_dir.rglob("*.onnx")}
    assert {p.name for p in files} == {"model.onnx", "model.opt.onnx", "model.opt.int8.onnx"}
    Embedder(backend="onnx-int8", export_dir=export_dir)
    assert {p: p.stat().st_mtime_ns for p in export_dir.rglob("*.onnx")} == files
    assert not list(export_dir.rglob("*.tmp")), "no half-written file is left behind"


def test_bad_backend_settings_are_refused(export_dir) -> None:
    with pytest.raises(ConfigError, match="not one of torch, onnx, onnx-int8"):
        Embedder(backend="tensorrt", export_dir=export_dir)
    with pytest.raises(ConfigError, match="runs on the CPU"):
        Embedder(backend="onnx-int8", device="cuda", export_dir=export_dir)


def test_a_cached_export_that_no_longer_reproduces_the_model_is_refused(export_dir) -> None:
    """The fp32 export is recorded under torch's revision, so every load checks it again: a stale or
    foreign file in the cache (here the int8 one) is refused and removed, and the next load makes it anew."""
    Embedder(backend="onnx-int8", export_dir=export_dir)
    [optimized] = export_dir.rglob("model.opt.onnx")
    optimized.write_bytes(next(export_dir.rglob("model.opt.int8.onnx")).read_bytes())
    with pytest.raises(ConfigError, match="does not reproduce its vectors"):
        Embedder(backend="onnx", export_dir=export_dir)
    assert not optimized.exists()
    assert Embedder(backend="onnx", export_dir=export_dir).info.revision == model_identity()[1]


def test_the_query_backend_follows_the_stored_vectors(monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(search_model, "choose_device", lambda: "cpu")
    torch_vectors = StoredModel(1, "all-MiniLM-L6-v2", "abc+ctx1", 384, None, None)
    int8_vectors = StoredModel(2, "all-MiniLM-L6-v2", "abc+ctx1+int8", 384, None, None)
    assert query_backend(torch_vectors, "auto") == "onnx", "onnxruntime is installed here and there is no GPU"
    assert query_backend(torch_vectors, "onnx") == "onnx" and query_backend(torch_vectors, "torch") == "torch"
    assert {query_backend(int8_vectors, wanted) for wanted in QUERY_BACKENDS} == {"onnx-int8"}, \
        "int8 vectors are only ever compared with int8 queries"
    with pytest.raises(ConfigError, match="not one of auto, torch, onnx"):
        query_backend(torch_vectors, "tensorrt")
    monkeypatch.setattr(search_model, "choose_device", lambda: "cuda")
    assert query_backend(torch_vectors, "auto") == "torch", "on a GPU, torch stays"


def same_ranking(found: list[SearchHit], expected: list[SearchHit]) -> bool:
    """The same chunks in the same order, except where two of them tie to 1e-4 (vectors equal to ~2e-7
    may swap exact ties)."""
    return len(found) == len(expected) and all(
        a.chunk_id == b.chunk_id or abs(a.score - b.score) < 1e-4 for a, b in zip(found, expected, strict=True))


@pytest.mark.database
def test_a_server_encodes_queries_with_onnx_and_finds_what_torch_finds(loaded_sample, conn, embedder) -> None:
    """``docvec serve``'s default: queries for fp32 torch vectors are encoded by ONNX Runtime, the model
    checked against the stored revision as before, and every search finds the same hits."""
    onnx = ServedModel(backend="onnx")
    stored = onnx.stored(conn)
    loaded = onnx.embedder(stored)
    assert loaded.backend == "onnx" and loaded.info.revision == stored.revision == embedder.info.revision
    queries = [q["query"] for q in sample_corpus.labelled_queries()]
    assert float((loaded.encode(queries) * embedder.encode(queries)).sum(axis=1).min()) > 0.9999
    by_onnx, by_torch = SearchService(OneConnection(conn), onnx), SearchService.over(conn, embedder)
    for query in queries:
        for mode in ("vector", "hybrid"):
            wanted = request(query, mode=mode, k=10)
            assert same_ranking(by_onnx.search(wanted).hits, by_torch.search(wanted).hits), (query, mode)


@pytest.mark.database
def test_auto_falls_back_to_torch_when_the_export_cannot_be_made(loaded_sample, conn, embedder, monkeypatch,
                                                                 caplog) -> None:
    """A home the export cannot be written to: ``auto`` logs why and encodes with torch (the stored
    vectors' own backend, checked against their revision); an explicit ``onnx`` fails with the reason."""
    def read_only(*_args: object) -> None:
        raise OSError("[Errno 30] Read-only file system: 'models'")

    monkeypatch.setattr(embedding, "loaded_encoder", read_only)
    monkeypatch.setattr(embedding, "_cache", {})  # nothing loaded yet in this process
    stored = ServedModel().stored(conn)
    with caplog.at_level(logging.WARNING, logger="pipeline.query.search_model"):
        assert ServedModel(backend="auto").embedder(stored).backend == "torch"
    assert "instead of ONNX Runtime" in caplog.text and "Read-only file system" in caplog.text
    with pytest.raises(OSError, match="Read-only"):
        ServedModel(backend="onnx").embedder(stored)
