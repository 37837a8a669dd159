"""Engine reports as Dagster shows them: metadata values, check results, and refusals that no retry
can get past."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, Failure, MetadataValue

from pipeline.errors import ConfigError
from pipeline.ops import run_metrics
from pipeline.ops.reports import CheckOutcome, Markdown
from pipeline.settings import Settings


def _value(value: Any) -> Any:
    if isinstance(value, Markdown):
        return MetadataValue.md(value)
    if isinstance(value, dict | list):
        return MetadataValue.json(value)
    if isinstance(value, bool):  # before int: a bool is an int to Python
        return MetadataValue.bool(value)
    if isinstance(value, int):
        return MetadataValue.int(value)
    return value  # floats and text: Dagster's own kinds for them


def dagster_metadata(values: Mapping[str, Any]) -> dict[str, Any]:
    """A report's plain values as Dagster metadata: Markdown rendered, dicts and lists as JSON."""
    return {key: _value(value) for key, value in values.items()}


def check_result(outcome: CheckOutcome, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    """An engine check's outcome as the result of the ``@asset_check`` that asked for it."""
    return AssetCheckResult(passed=outcome.passed, severity=severity, description=outcome.description,
                            metadata=dagster_metadata(outcome.metadata))


@contextmanager
def refused_as_failure() -> Iterator[None]:
    """A ``ConfigError`` (a setting or a request that cannot be carried out as asked) fails the step
    with its message, without the retries that would only fail the same way."""
    try:
        yield
    except ConfigError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc


def publish_run_metrics(context: AssetExecutionContext, settings: Settings,
                        samples: Callable[[], Sequence[run_metrics.Sample]]) -> None:
    """The step's run metrics to the Pushgateway and/or textfile folder the environment configures
    (``pipeline/ops/run_metrics.py``; ``settings``: ``DOCVEC_PUSHGATEWAY_URL``, ``DOCVEC_METRICS_TEXTFILE_DIR``),
    grouped by asset and partition; a failure is a warning only.
    ``samples`` are measured only when one is configured."""
    target = run_metrics.Target.of(settings)
    if target.pushgateway is None and target.textfile_dir is None:
        return
    keys = context.partition_keys if context.has_partition_key or context.has_partition_key_range else []
    partition = "none" if not keys else keys[0] if len(keys) == 1 else f"{keys[0]}...{keys[-1]}"
    try:
        measured = samples()
    except psycopg.Error as exc:  # the store's size could not be read: the step's work is done all the same
        context.log.warning(f"run metrics not published: measuring them failed ({exc}); the run goes on")
        return
    run_metrics.publish(context.asset_key.to_user_string(), partition, measured, context.log.warning, target)
