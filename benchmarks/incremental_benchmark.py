"""First run vs unchanged rerun vs one-day-changed rerun of the sample corpus, side by side in one run,
measured two ways: through the real Dagster assets (one in-process run over the whole day range, as
``dagster asset materialize --partition-range`` does), and through the same engine calls the assets make
without Dagster (what docvec itself costs; Dagster adds a per-run floor of run and event bookkeeping).

Usage: ``python -m benchmarks.incremental_benchmark [--notes-per-topic-per-day 5] [--days 7]``
(5 over 7 days is the bundled sample corpus, 360 documents; larger values scale it up; the fourth day is
the one edited.)
Works in scratch databases (``docvec_bench_incremental``, ``..._engine``) on the configured server and a temporary
landing directory; the model is loaded once before timing (each figure excludes that ~5 s).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

from dagster import DagsterInstance, Definitions

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from benchmarks import smoke
from benchmarks.server import benchmark_main, drop_scratch, scratch_settings
from pipeline import sample_corpus
from pipeline.ingest import planning, stages
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.ingest.landing_zone import list_days, open_landing
from pipeline.ingest.planning import Recipe
from pipeline.settings import Settings
from pipeline.storage import connections
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from schedules import ingest_job

DATABASE = "docvec_bench_incremental"


def run(defs: Definitions, first: dt.date, last: dt.date) -> tuple[float, dict[str, int]]:
    job = defs.resolve_job_def(ingest_job.name)
    started = time.perf_counter()
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        })
    seconds = time.perf_counter() - started
    assert result.success
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    figures = {name: int(meta[asset][name].value) for asset, name in [
        ("chunk_embeddings", "embedded"), ("chunk_embeddings", "reused"), ("vector_store", "chunks"),
        ("vector_store", "days_unchanged"), ("vector_store", "days")]}
    return seconds, figures


def engine_run(settings: Settings, embedder: Embedder, landing: Path,
               days: list[dt.date]) -> tuple[float, dict[str, int]]:
    """The assets' engine calls, day by day, with no Dagster around them."""
    config = ChunkingConfig(max_seq_length=embedder.info.max_seq_length)
    tokenizer = embedder.backend_tokenizer()
    figures = {"embedded": 0, "reused": 0, "chunks": 0, "days_unchanged": 0, "days": len(days)}
    started = time.perf_counter()
    opened = open_landing(str(landing))
    with connections.connect(settings) as conn:
        for day in days:
            plan = planning.plan_day(conn, opened, day, Recipe(config, embedder.info))
            chunks = stages.chunk_day(plan, lambda: tokenizer)
            embeddings = stages.embed_chunks(chunks, embedder, conn)
            load = stages.load_embeddings(conn, embeddings)
            figures["embedded"] += embeddings.embedded
            figures["reused"] += embeddings.reused
            figures["chunks"] += load.chunks
            figures["days_unchanged"] += load.unchanged
    return time.perf_counter() - started, figures


def edit_notes(landing: Path, day: dt.date, count: int = 5) -> list[Path]:
    edited = sorted((landing / day.isoformat()).rglob("note-*.md"))[:count]
    for path in edited:
        path.write_text(path.read_text() + "\nAn added sentence that changes this note.\n")
    return edited


def print_table(title: str, rows: list[tuple[str, float, dict[str, int]]]) -> None:
    print(title)
    print(f"  {'run':<34} {'seconds':>8} {'embedded':>9} {'reused':>7} {'days unchanged':>15}")
    for label, seconds, figures in rows:
        print(f"  {label:<34} {seconds:>8.3f} {figures['embedded']:>9} {figures['reused']:>7} "
              f"{figures['days_unchanged']:>9} of {figures['days']}")
    first, rerun = rows[0][1], rows[1][1]
    print(f"  unchanged rerun speed-up: {first / rerun:.1f}x (target >= 50x, with 0 chunks embedded: "
          f"{rows[1][2]['embedded']} embedded)")


@benchmark_main
def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes-per-topic-per-day", type=int, default=5)
    parser.add_argument("--days", type=int, default=sample_corpus.DAYS, help="at least 4")
    args = smoke.parse_args(parser, {"notes_per_topic_per_day": 1, "days": 4})
    if args.days < 4:
        parser.error("--days must be at least 4: the fourth day is the one edited")
    embedder = load_embedder()
    settings = scratch_settings(DATABASE, embedder.info.dim)
    engine_settings = scratch_settings(DATABASE + "_engine", embedder.info.dim)
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        engine_landing = Path(tmp) / "engine-landing"
        for folder in (landing, engine_landing):
            sample_corpus.write_sample_corpus(folder, days=args.days, notes_per_topic_per_day=args.notes_per_topic_per_day)
        days = list_days(landing)
        changed_day = days[3]
        defs = Definitions(
            assets=[raw_documents, document_chunks, chunk_embeddings, vector_store],
            jobs=[ingest_job],
            resources={
                "postgres": PostgresResource(database_url=settings.database_url),
                "embedder": EmbedderResource(),
                "source": SourceResource(landing_dir=str(landing)),
                "retention_window": RetentionResource(),
                "batch_io_manager": DayBatchIOManager(base_dir=str(Path(tmp) / "batches")),
            },
        )
        dagster_rows = []
        for label in ("first run", "unchanged rerun", f"rerun, 5 notes edited on {changed_day}"):
            if label.startswith("rerun, 5"):
                edited = edit_notes(landing, changed_day)
            dagster_rows.append((label, *run(defs, days[0], days[-1])))
        engine_rows = []
        for label in ("first run", "unchanged rerun", f"rerun, 5 notes edited on {changed_day}"):
            if label.startswith("rerun, 5"):
                edit_notes(engine_landing, changed_day)
            engine_rows.append((label, *engine_run(engine_settings, embedder, engine_landing, days)))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, model {embedder.info.name} on {embedder.device}; "
          f"sample corpus: {len(days)} days, {dagster_rows[0][2]['chunks']} chunks")
    print_table("through Dagster (one in-process run of the 4 ingest assets over all days):", dagster_rows)
    print_table("docvec engine alone (the same calls the assets make, no Dagster run around them):", engine_rows)
    print(f"Dagster's own per-run cost on the unchanged rerun: {dagster_rows[1][1] - engine_rows[1][1]:.3f} s")
    print(f"one-day-changed rerun embedded {dagster_rows[2][2]['embedded']} chunks through Dagster and "
          f"{engine_rows[2][2]['embedded']} alone (the edited notes: {len(edited)})")
    for name in (DATABASE, DATABASE + "_engine"):
        drop_scratch(name)


if __name__ == "__main__":
    main()
