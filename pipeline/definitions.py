"""The one place that assembles docvec's Dagster ``Definitions`` (``workspace.yaml`` points here)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from assets.index import vector_index
from assets.ingest import chunk_embeddings, document_chunks, raw_documents, vector_store
from assets.retention import retention
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, RetentionResource, SourceResource
from schedules.ingest import ingest_job, ingest_schedule
from schedules.retention import build_retention_schedule, retention_job
from schedules.sensors import landing_sensor

defs = Definitions(
    assets=[raw_documents, document_chunks, chunk_embeddings, vector_store, vector_index, retention],
    jobs=[ingest_job, retention_job],
    # To run retention at another hour or zone: build_retention_schedule(cron="0 3 * * *", timezone="Europe/Paris").
    schedules=[ingest_schedule, build_retention_schedule()],
    sensors=[landing_sensor],
    # One process per run: the model loads once and serves every step and day of the run. Parallelism
    # comes from running several day-partition runs at once (run coordinator), not steps of one chain.
    executor=in_process_executor,
    resources={
        "postgres": PostgresResource(),
        "embedder": EmbedderResource(),
        "source": SourceResource(),
        "retention_window": RetentionResource(),
        "batch_io_manager": DayBatchIOManager(),
    },
)
