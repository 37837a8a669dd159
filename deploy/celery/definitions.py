"""Code location for Celery: the steps of each run go to Celery workers (``celery_executor``) on the
default queue (``dagster``). ``deploy.celery.gpu_definitions`` sends the embedding step to the queue
``gpu`` instead (docs/SCALING.md)."""

from dagster_celery import celery_executor

from pipeline.definitions import build_definitions

defs = build_definitions(executor=celery_executor)
