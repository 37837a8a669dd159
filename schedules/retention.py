"""The daily retention job and its schedule."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

retention_job = define_asset_job(
    "enforce_retention",
    selection=["retention"],
    description="Drop chunk partitions older than the retention window.",
)


def build_retention_schedule(cron: str = "15 1 * * *", timezone: str = "UTC",
                             default_status: DefaultScheduleStatus = DefaultScheduleStatus.RUNNING) -> ScheduleDefinition:
    """Daily at 01:15 in ``timezone`` by default; on by default, because the window is a promise."""
    return ScheduleDefinition(
        name="retention_daily_schedule",
        job=retention_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=default_status,
        description="Enforce the retention window every day.",
    )
