"""Code location for Celery: the steps of each run go to Celery workers (``celery_executor``) on
the default queue. To put embedding on GPU hosts, start their workers with ``-q gpu`` and give the
``chunk_embeddings`` asset ``op_tags={"dagster-celery/queue": "gpu"}`` (docs/SCALING.md)."""

from dagster_celery import celery_executor

from pipeline.definitions import build_definitions

defs = build_definitions(executor=celery_executor)
