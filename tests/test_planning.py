"""The one decision of "unchanged" and the reports the assets hand to Dagster, without a database or a
model: what a recipe fingerprints, what a plan says downstream, how a report's values are shown."""

from __future__ import annotations

import datetime as dt

from dagster import AssetCheckSeverity, MetadataValue

from assets.reporting import check_result, dagster_metadata
from pipeline.ingest import stages
from pipeline.ingest.planning import DayPlan, Recipe
from pipeline.ops.ingest_steps import ChunkReport, ReadReport, chunk_days
from pipeline.ops.reports import CheckOutcome, Markdown
from pipeline.records import DayDocuments, ModelInfo, SourceState

MODEL = ModelInfo(name="all-MiniLM-L6-v2", revision="abc+ctx1", dim=384, max_seq_length=256, normalized=True,
                  device="not loaded")
DAY = dt.date(2026, 3, 2)


def test_a_recipe_fingerprints_a_day_as_stores_recorded_it() -> None:
    """The fingerprint every stored day was recorded under (ingest_days.fingerprint): the same contents
    and settings must give it, or upgrading would rebuild every day. It changes only on purpose: last
    with LEXICAL_RECIPE bm25-2 (impact markers), which rebuilds each day once on its next run."""
    recipe = Recipe.of(MODEL, contextual=True, overlap_tokens=32, max_chunks_per_document=10_000)
    assert recipe.chunking.budget == 256 - 2 - 32, "the contextual header's room is reserved"
    assert recipe.fingerprint("c0ffee") == "b36c64f759df8f3f58722e179bf8c69ddee59356b8437953f7f4d45aa11fd419"
    assert Recipe.of(MODEL, contextual=True, overlap_tokens=16, max_chunks_per_document=10_000).fingerprint("c0ffee") \
        != recipe.fingerprint("c0ffee"), "other settings, another day"


def test_an_unchanged_plan_goes_through_chunking_without_the_model() -> None:
    recipe = Recipe.of(MODEL, max_chunks_per_document=10)
    stored = SourceState(signature="sig", content_fingerprint="c0ffee")
    plan = DayPlan(DayDocuments(DAY, [], [], files_seen=3, seconds=0.01, source=stored), recipe,
                   recipe.fingerprint("c0ffee"), unchanged=True, files_read=0)

    def no_model():
        raise AssertionError("an unchanged day must not load the model")

    report = chunk_days({DAY.isoformat(): plan}, no_model)
    [chunks] = report.batches.values()
    assert chunks.unchanged and chunks.model == MODEL and chunks.fingerprint == plan.fingerprint
    assert stages.unchanged_embeddings(chunks).model_revision == MODEL.revision, "the stored vectors' model, unloaded"
    assert report.metadata()["days_unchanged"] == 1 and report.metadata()["max_tokens_per_chunk"] == recipe.chunking.budget
    read = ReadReport({DAY.isoformat(): plan}, "/landing")
    assert read.lines() == [f"{DAY}: 3 files unchanged since the last load, not read"]
    assert read.metadata()["days_not_read"] == 1 and read.metadata()["days_unchanged"] == 1


def test_report_values_become_dagster_metadata_and_check_results() -> None:
    shown = dagster_metadata({"table": Markdown("| a |"), "per_day": {"2026-03-02": 4}, "days": [1], "chunks": 7,
                              "unchanged": True, "seconds": 1.5, "landing": "/landing"})
    assert shown["table"] == MetadataValue.md("| a |") and shown["per_day"] == MetadataValue.json({"2026-03-02": 4})
    assert shown["days"] == MetadataValue.json([1]) and shown["chunks"] == MetadataValue.int(7)
    assert shown["unchanged"] == MetadataValue.bool(True) and shown["seconds"] == 1.5 and shown["landing"] == "/landing"
    result = check_result(CheckOutcome(False, {"open_dead_letters": ["2026-03-02/x.pdf: encrypted"]}, "one open"),
                          AssetCheckSeverity.WARN)
    assert not result.passed and result.severity == AssetCheckSeverity.WARN and result.description == "one open"
    assert result.metadata["open_dead_letters"] == MetadataValue.json(["2026-03-02/x.pdf: encrypted"])
    assert isinstance(ChunkReport({}, 0).metadata()["chunks_per_second"], float)
