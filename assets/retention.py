"""The retention window, enforced by dropping whole day partitions."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from pipeline.storage import retention as engine
from resources import PostgresResource, RetentionResource


class RetentionRun(Config):
    dry_run: bool = Field(default=False, description="report what would be dropped, drop nothing")


@asset(
    deps=["vector_store"],
    group_name="maintenance",
    owners=["team:data-platform"],
    kinds={"postgres", "pgvector"},
    check_specs=[AssetCheckSpec("nothing_older_than_window", asset="retention",
                                description="no chunks or documents older than the retention window remain")],
)
def retention(context: AssetExecutionContext, config: RetentionRun, postgres: PostgresResource,
              retention_window: RetentionResource) -> MaterializeResult:
    """Enforces the retention window (default 30 days, today included): every `chunks` partition
    older than it is detached and dropped (O(1), no DELETE, no vacuum, no index repair), and a sealed
    block that straddles its edge is rebuilt from its days inside it; with those days' documents and
    resolved dead letters. A day being ingested right now is skipped and
    retried at the next run; rerunning is a no-op."""
    today = retention_window.today()
    with postgres.connect() as conn:
        result = engine.apply_retention(conn, today, retention_window.window_days, dry_run=config.dry_run,
                                        log=context.log.info)
        leftover = [] if config.dry_run else engine.days_older_than_window(conn, today, retention_window.window_days)
    verb = "would drop" if config.dry_run else "dropped"
    for purged in result.dropped:
        kept = f" (its later days rebuilt as {purged.kept_as})" if purged.kept_as else ""
        context.log.info(f"{verb} {purged.first}..{purged.last} of {purged.table}{kept}: "
                         f"{purged.rows:,} chunks, {purged.bytes:,} bytes")
    if result.skipped_busy:
        context.log.warning(f"skipped days being ingested right now: {result.skipped_busy}")
    return MaterializeResult(
        metadata={
            "window_days": retention_window.window_days,
            "today": str(today),
            "retention_horizon": str(result.horizon),
            "dry_run": config.dry_run,
            "days_dropped": len(result.days),
            "dropped_days": MetadataValue.json([str(day) for day in result.days]),
            "blocks_trimmed": MetadataValue.json({p.table: p.kept_as for p in result.dropped if p.kept_as}),
            "rows_dropped": result.rows,
            "bytes_freed": MetadataValue.int(result.bytes),
            "documents_deleted": result.documents_deleted,
            "dead_letters_deleted": result.dead_letters_deleted,
            "skipped_busy_days": len(result.skipped_busy),
            "seconds": round(result.seconds, 3),
        },
        check_results=[AssetCheckResult(
            check_name="nothing_older_than_window",
            passed=not leftover,
            metadata={"offending_days": MetadataValue.json([str(d) for d in leftover]),
                      "retention_horizon": str(result.horizon)},
        )],
    )
