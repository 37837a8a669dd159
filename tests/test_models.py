"""Embedding-model lifecycle through the real assets: a changed model builds a shadow set beside the
served one, search switches atomically once every stored day is covered, rollback is one command, and
search never mixes models. The second model is the bundled one on the int8 ONNX backend: a real, different
set of vectors (its own revision) with nothing to download."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest
from dagster import build_sensor_context, materialize

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.cli import main as cli
from pipeline.errors import ConfigError, DimensionMismatchError
from pipeline.ingest import context, landing_zone, stages
from pipeline.query import search, search_model
from pipeline.records import ModelInfo
from pipeline.storage import connections, model_lifecycle, model_registry
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from schedules import embedding_model_sensor
from tests.support.databases import fresh_database
from tests.support.sample import SAMPLE_END

DAYS = [SAMPLE_END - dt.timedelta(days=1), SAMPLE_END]
ASSETS = [raw_documents, document_chunks, chunk_embeddings, vector_store]
QUERY = "how do I rotate the database credentials"


def _run(resources: dict, day: dt.date, backend: str):
    result = materialize(ASSETS, resources={**resources, "embedder": EmbedderResource(backend=backend)},
                         partition_key=day.isoformat(), raise_on_error=False)
    return result


def _meta(result, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def _no_duplicate_chunks(hits) -> bool:
    return len({h.chunk_id for h in hits}) == len(hits)


@pytest.fixture()
def lifecycle(migrated, embedder, sample_landing, tmp_path):
    settings = fresh_database(migrated, embedder.info.dim, f"docvec_models_{os.getpid()}")
    resources = {
        "postgres": PostgresResource(database_url=settings.database_url),
        "source": SourceResource(landing_dir=str(sample_landing)),
        "retention_window": RetentionResource(as_of=SAMPLE_END.isoformat()),
        "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
    }
    return settings, resources


def test_shadow_build_switches_atomically_and_rolls_back(lifecycle, embedder, capsys, monkeypatch) -> None:
    settings, resources = lifecycle
    for day in DAYS:
        assert _run(resources, day, "torch").success
    with connections.connect(settings) as conn:
        fp32 = model_registry.serving(conn)
        assert fp32.label == f"{embedder.info.name}@{embedder.info.revision}"
        before = search.search(conn, search_model.serving_embedder(conn), QUERY, k=5, mode="vector")

    # The configured model changes: the sensor asks for every stored day, and the first shadow day
    # leaves search on the served model.
    sensor = embedding_model_sensor(build_sensor_context(resources={
        "embedder": EmbedderResource(backend="onnx-int8"), "postgres": resources["postgres"]}))
    request = sensor.run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
    assert request.tags["dagster/asset_partition_range_end"] == DAYS[1].isoformat()

    shadow_day = _run(resources, DAYS[0], "onnx-int8")
    assert shadow_day.success
    embedded = _meta(shadow_day, "chunk_embeddings")
    assert embedded["reused"] == 0 and embedded["embedded"] == embedded["chunks"] > 0, "nothing reused across models"
    assert "shadow build" in _meta(shadow_day, "vector_store")["embedding_model"]
    with connections.connect(settings) as conn:
        assert "shadow" in model_lifecycle.summary(conn) and "1/2 days built" in model_lifecycle.summary(conn)
        assert model_registry.serving(conn).id == fp32.id
        int8 = model_registry.lookup(conn, embedder.info.name, f"{embedder.info.revision}+int8")
        assert model_lifecycle.coverage(conn, int8).missing_days == [DAYS[1]]
        both = conn.execute("SELECT count(DISTINCT model_id) FROM chunks WHERE ingest_date = %s", (DAYS[0],)).fetchone()
        assert both == (2,), "the day holds the served vectors and the shadow vectors side by side"
        during = search.search(conn, search_model.serving_embedder(conn), QUERY, k=5, mode="vector")
        assert [h.chunk_id for h in during] == [h.chunk_id for h in before]
        assert [round(h.similarity, 5) for h in during] == [round(h.similarity, 5) for h in before]
        assert _no_duplicate_chunks(search.search(conn, search_model.serving_embedder(conn), QUERY, k=20, mode="hybrid"))

    last_day = _run(resources, DAYS[1], "onnx-int8")
    assert last_day.success
    assert "switched" in _meta(last_day, "vector_store")["embedding_model"]
    with connections.connect(settings) as conn:
        assert model_registry.serving(conn).id == int8.id
        served = search_model.serving_embedder(conn)
        assert served.info.revision.endswith("+int8") and served.backend == "onnx-int8"
        after = search.search(conn, served, QUERY, k=5, mode="vector")
        assert after and _no_duplicate_chunks(after)
        assert after[0].doc_id == before[0].doc_id, "int8 finds the same best document"

    # Rollback: one command; the int8 model is retired, so ingesting with it is refused by name.
    home = ["--home", str(settings.home)]
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert cli.main([*home, "model", "rollback"]) == 0
    assert "serves" in capsys.readouterr().out
    with connections.connect(settings) as conn:
        assert model_registry.serving(conn).id == fp32.id
        assert model_registry.get(conn, int8.id).retired_at is not None
        assert search.search(conn, search_model.serving_embedder(conn), QUERY, k=5, mode="vector")[0].chunk_id \
            == before[0].chunk_id
    refused = _run(resources, DAYS[1], "onnx-int8")
    assert not refused.success
    message = str(refused.get_step_failure_events()[0].event_specific_data.error)
    assert "rolled back" in message and "docvec model activate" in message
    assert cli.main([*home, "model", "list"]) == 0
    table = capsys.readouterr().out
    assert "serving" in table and "retired" in table and "2/2" in table
    # Undo the rollback explicitly.
    assert cli.main([*home, "model", "activate", str(int8.id)]) == 0
    with connections.connect(settings) as conn:
        assert model_registry.serving(conn).id == int8.id


def test_activate_refuses_a_model_missing_days_and_dimensions_are_named(lifecycle, embedder) -> None:
    settings, resources = lifecycle
    assert _run(resources, DAYS[0], "torch").success
    assert _run(resources, DAYS[1], "torch").success
    assert _run(resources, DAYS[0], "onnx-int8").success
    with connections.connect(settings) as conn:
        int8 = model_registry.lookup(conn, embedder.info.name, f"{embedder.info.revision}+int8")
        with pytest.raises(ConfigError, match=f"1 stored days \\({DAYS[1]}\\)"):
            model_lifecycle.activate(conn, int8.id)
        with pytest.raises(ConfigError, match="no previously served"):
            model_lifecycle.rollback(conn)
        wide = ModelInfo(name="wide-model", revision="x", dim=768, max_seq_length=512, normalized=True, device="cpu")
        with pytest.raises(DimensionMismatchError, match=r"768-d.*halfvec\(384\)"):
            model_registry.register(conn, wide)
        served = model_registry.serving(conn)
        with pytest.raises(DimensionMismatchError, match=r"768 dimensions.*have 384"):
            search.search_vector(conn, np.ones(768, dtype=np.float32), served.id, k=3)


@pytest.mark.slow
def test_model_build_cli_embeds_the_missing_days_and_switches(migrated, embedder, chunking_config, tmp_path,
                                                              capsys, monkeypatch) -> None:
    """`docvec model build` from the README: one Dagster run (a subprocess) over the days the model
    lacks, which ends with search serving it."""
    from pipeline import sample_corpus
    from pipeline.settings import Settings

    scratch = fresh_database(migrated, embedder.info.dim, f"docvec_models_cli_{os.getpid()}")
    settings = Settings(home=tmp_path / "home", database_url=scratch.database_url,
                        dagster_database_url=scratch.database_url, pgbouncer=False)
    sample_corpus.write_sample_corpus(settings.landing_dir, end=dt.date.today(), days=2)
    with connections.connect(settings) as conn:
        for day in landing_zone.list_days(settings.landing_dir):
            chunks = stages.chunk_documents(stages.read_documents(settings.landing_dir, day),
                                           embedder.backend_tokenizer(), chunking_config)
            stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
        fp32 = model_registry.serving(conn)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DAGSTER_DATABASE_URL", settings.database_url)
    assert cli.main(["--home", str(settings.home), "model", "build", "--backend", "onnx-int8"]) == 0
    assert "embedding 2 stored days" in capsys.readouterr().out
    with connections.connect(settings) as conn:
        serving = model_registry.serving(conn)
        assert serving.revision == f"{fp32.revision}+int8" and model_registry.previous(conn).id == fp32.id
        assert model_lifecycle.coverage(conn, serving).complete
    assert cli.main(["--home", str(settings.home), "model", "build", "--backend", "onnx-int8"]) == 0
    assert "already covers every stored day" in capsys.readouterr().out


def test_the_model_sensor_skips_when_nothing_changed_or_the_database_is_down(lifecycle) -> None:
    _settings, resources = lifecycle
    assert _run(resources, DAYS[0], "torch").success
    same = embedding_model_sensor(build_sensor_context(resources={
        "embedder": EmbedderResource(), "postgres": resources["postgres"]}))
    assert "serves the configured model" in same.skip_message
    down = embedding_model_sensor(build_sensor_context(resources={
        "embedder": EmbedderResource(backend="onnx-int8"),
        "postgres": PostgresResource(database_url="postgresql://docvec@127.0.0.1:9/none", retries=0)}))
    assert "cannot check the embedding models" in down.skip_message


def test_contextual_headers_are_their_own_revision_built_in_the_shadow(lifecycle, embedder) -> None:
    """A store built with bare chunks (the recipe before contextual headers) moves to headed chunks the
    way any model change does: a shadow set beside the served one, one switch, never mixed."""
    settings, resources = lifecycle

    def run(day: dt.date, contextual: bool):
        return materialize(ASSETS, resources={**resources, "embedder": EmbedderResource(contextual_headers=contextual)},
                           partition_key=day.isoformat(), raise_on_error=False)

    for day in DAYS:
        assert run(day, False).success
    with connections.connect(settings) as conn:
        bare = model_registry.serving(conn)
        assert not bare.contextual and not bare.revision.endswith("+ctx1")
        assert run(DAYS[0], True).success
        headed = model_registry.lookup(conn, bare.name, f"{bare.revision}+ctx1")
        assert model_registry.serving(conn).id == bare.id, "still serving the bare chunks mid-build"
        rows = conn.execute("""SELECT b.text, b.context, h.text, h.context, h.metadata FROM chunks b
                               JOIN chunks h ON h.ingest_date = b.ingest_date AND h.doc_id = b.doc_id AND h.seq = b.seq
                               WHERE b.model_id = %s AND h.model_id = %s""", (bare.id, headed.id)).fetchall()
        assert rows and all(b_context == "" for _, b_context, *_ in rows)
        assert all(h_context == context.header(meta.get("title"), meta.get("section")) and h_context
                   for *_, h_context, meta in rows), "each headed chunk records the header it was embedded with"
        assert all(b_text == h_text for b_text, _, h_text, *_ in rows), "the stored text is the same clean text"
        assert run(DAYS[1], True).success
        assert model_registry.serving(conn).id == headed.id
        served = search_model.serving_embedder(conn)
        assert served.contextual and served.info.revision == headed.revision
        hits = search.search(conn, served, QUERY, k=10, mode="hybrid")
        ids = {h.chunk_id for h in hits}
        stored = conn.execute("SELECT DISTINCT model_id FROM chunks WHERE chunk_id = ANY(%s)", (list(ids),)).fetchall()
        assert hits and _no_duplicate_chunks(hits) and {m for (m,) in stored} >= {headed.id}
