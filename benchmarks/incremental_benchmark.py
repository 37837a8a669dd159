"""First run vs unchanged rerun vs one-day-changed rerun of the sample corpus, side by side in one run,
through the real Dagster assets (one in-process run over the whole day range, as
``dagster asset materialize --partition-range`` does).

Usage: ``python -m benchmarks.incremental_benchmark [--notes-per-topic-per-day 5]``
(5 is the bundled sample corpus, 360 documents; larger values scale it up.)
Works in a scratch database (``docvec_bench_incremental``) on the configured server and a temporary
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

from assets.ingest import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline import db, migrate, sample_corpus, sources
from pipeline.embedding import load_embedder
from pipeline.settings import load_settings
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from schedules.ingest import ingest_job

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


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes-per-topic-per-day", type=int, default=5)
    args = parser.parse_args()
    embedder = load_embedder()
    settings = migrate.migrated_scratch_database(load_settings(), embedder.info.dim, DATABASE)
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        sample_corpus.write_sample_corpus(landing, notes_per_topic_per_day=args.notes_per_topic_per_day)
        days = sources.list_days(landing)
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
        first_s, first = run(defs, days[0], days[-1])
        rerun_s, rerun = run(defs, days[0], days[-1])
        changed_day = days[3]
        edited = sorted((landing / changed_day.isoformat()).rglob("note-*.md"))[:5]
        for path in edited:
            path.write_text(path.read_text() + "\nAn added sentence that changes this note.\n")
        changed_s, changed = run(defs, days[0], days[-1])

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, model {embedder.info.name} on {embedder.device}; "
          f"sample corpus: {len(days)} days, {first['chunks']} chunks")
    print(f"{'run':<34} {'seconds':>8} {'embedded':>9} {'reused':>7} {'days unchanged':>15}")
    for label, seconds, figures in [("first run", first_s, first), ("unchanged rerun", rerun_s, rerun),
                                    (f"rerun, 5 notes edited on {changed_day}", changed_s, changed)]:
        print(f"{label:<34} {seconds:>8.2f} {figures['embedded']:>9} {figures['reused']:>7} "
              f"{figures['days_unchanged']:>9} of {figures['days']}")
    print(f"unchanged rerun speed-up: {first_s / rerun_s:.1f}x (target >= 50x, with 0 chunks embedded)")
    print(f"one-day-changed rerun embedded {changed['embedded']} chunks (the edited notes: {len(edited)})")
    db.drop_database(load_settings(), DATABASE)


if __name__ == "__main__":
    main()
