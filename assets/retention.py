"""The retention window, enforced by dropping whole day partitions, and the check that it holds."""

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    asset,
    asset_check,
)
from pydantic import Field

from assets.reporting import check_result, dagster_metadata
from pipeline.ops import retention_run, store_checks
from pipeline.ops.reports import log_lines
from resources import PostgresResource, RetentionResource, SourceResource


class RetentionRun(Config):
    dry_run: bool = Field(default=False, description="report what would be dropped, drop nothing")


@asset(deps=["vector_store"], group_name="maintenance", owners=["team:data-platform"], kinds={"postgres", "pgvector"})
def retention(context: AssetExecutionContext, config: RetentionRun, postgres: PostgresResource,
              retention_window: RetentionResource, source: SourceResource) -> MaterializeResult:
    """Enforces the retention window (default 30 days, today included). Day folders: every `chunks`
    partition older than it is detached and dropped (O(1), no DELETE, no vacuum, no index repair), and a
    sealed block that straddles its edge is rebuilt from its days inside it; with those days' documents
    and resolved dead letters. A collection: only history goes (versions superseded or deleted before
    the window); a live document stays however long ago it changed. A day being ingested right now is
    skipped and retried at the next run; rerunning is a no-op."""
    with postgres.connect() as conn:
        report = retention_run.enforce_retention(conn, retention_window.today(), retention_window.window_days,
                                                 dry_run=config.dry_run, log=context.log.info,
                                                 collection=source.source_mode() == "collection")
    log_lines(context.log.info, report.lines())
    log_lines(context.log.warning, report.warnings())
    return MaterializeResult(metadata=dagster_metadata(report.metadata()))


@asset_check(asset=retention, description="no chunks or documents older than the retention window remain")
def nothing_older_than_window(postgres: PostgresResource, retention_window: RetentionResource,
                              source: SourceResource) -> AssetCheckResult:
    """The days older than the window that still have chunks or documents (after a dry run: the days a
    real run would drop); for a collection, the versions older than the window that are history."""
    with postgres.connect() as conn:
        return check_result(store_checks.nothing_older_than_window(
            conn, retention_window.today(), retention_window.window_days,
            collection=source.source_mode() == "collection"))


RETENTION_CHECKS = [nothing_older_than_window]
