"""Code location for Celery with GPU hosts: like ``deploy.celery.definitions``, but the embedding step
(``chunk_embeddings``) goes to the Celery queue ``gpu``, served by workers started with ``-q gpu`` on
machines with a GPU; reading, chunking, loading and indexing stay on the default queue (``dagster``)."""

from dagster_celery import celery_executor

from pipeline.definitions import build_definitions

GPU_QUEUE = "gpu"

defs = build_definitions(executor=celery_executor, embedding_op_tags={"dagster-celery/queue": GPU_QUEUE})
