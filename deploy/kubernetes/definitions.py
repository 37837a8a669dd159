"""Code location for Kubernetes: each step of a run in its own pod (``k8s_job_executor``), so the
embedding step can ask for a GPU node while reading, chunking and loading stay on CPU pods.
Point the Dagster Helm chart's user deployment at ``-m deploy.kubernetes.definitions``."""

from dagster_k8s import k8s_job_executor

from pipeline.definitions import build_definitions

defs = build_definitions(executor=k8s_job_executor)
