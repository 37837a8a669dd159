"""The one place that assembles docvec's Dagster ``Definitions`` (``workspace.yaml`` points here; the
code locations under ``deploy/`` call ``build_definitions`` with their executor)."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import Definitions, ExecutorDefinition, in_process_executor

from assets import ALL_ASSETS, ALL_CHECKS, chunk_embeddings, embedding_asset
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from schedules import (
    build_retention_schedule,
    embedding_model_sensor,
    ingest_job,
    ingest_schedule,
    landing_sensor,
    retention_job,
)


def build_definitions(executor: ExecutorDefinition = in_process_executor,
                      embedding_op_tags: Mapping[str, str] | None = None) -> Definitions:
    """docvec's assets and their checks, jobs, schedules, sensors and resources, run by ``executor``.

    The default runs each run in one process: the model loads once and serves every step and day of
    the run, and day-level parallelism comes from several runs at once (the run queue's
    ``max_concurrent_runs``). Step-isolating executors (multiprocess, Kubernetes jobs, Celery) work too:
    steps hand their per-day batches over through files (``batch_io_manager``), which then must sit on
    storage every step's process or pod can reach. ``embedding_op_tags`` tag the embedding step alone,
    to place it (``{"dagster-celery/queue": "gpu"}`` sends it to GPU workers)."""
    assets = [embedding_asset(embedding_op_tags) if a is chunk_embeddings and embedding_op_tags else a
              for a in ALL_ASSETS]
    return Definitions(
        assets=assets,
        asset_checks=ALL_CHECKS,
        jobs=[ingest_job, retention_job],
        # To run retention at another hour or zone: build_retention_schedule(cron="0 3 * * *", timezone="Europe/Paris").
        schedules=[ingest_schedule, build_retention_schedule()],
        sensors=[landing_sensor, embedding_model_sensor],
        executor=executor,
        resources={
            "postgres": PostgresResource(),
            "embedder": EmbedderResource(),
            "source": SourceResource(),
            "retention_window": RetentionResource(),
            "batch_io_manager": DayBatchIOManager(),
        },
    )


defs = build_definitions()
