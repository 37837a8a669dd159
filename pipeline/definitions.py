"""The one place that assembles docvec's Dagster ``Definitions`` (``workspace.yaml`` points here)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from assets.ingest import chunk_embeddings, document_chunks, raw_documents, vector_store
from resources import DayBatchIOManager, EmbedderResource, PostgresResource, SourceResource
from schedules.ingest import ingest_job, ingest_schedule

defs = Definitions(
    assets=[raw_documents, document_chunks, chunk_embeddings, vector_store],
    jobs=[ingest_job],
    schedules=[ingest_schedule],
    # One process per run: the model loads once and serves every step and day of the run. Parallelism
    # comes from running several day-partition runs at once (run coordinator), not steps of one chain.
    executor=in_process_executor,
    resources={
        "postgres": PostgresResource(),
        "embedder": EmbedderResource(),
        "source": SourceResource(),
        "batch_io_manager": DayBatchIOManager(),
    },
)
