"""Jobs, schedules and sensors. Other packages use what this package exports, never its modules."""

from schedules.ingest import ingest_job, ingest_schedule
from schedules.retention import build_retention_schedule, retention_job
from schedules.sensors import embedding_model_sensor, landing_sensor

__all__ = ["build_retention_schedule", "embedding_model_sensor", "ingest_job", "ingest_schedule", "landing_sensor",
           "retention_job"]
