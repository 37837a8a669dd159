"""Dagster resources: typed configuration around the framework-free engine in ``pipeline/``."""

from resources.batches import DayBatchIOManager
from resources.embedder import EmbedderResource
from resources.postgres import PostgresResource
from resources.retention import RetentionResource
from resources.source import SourceResource

__all__ = ["DayBatchIOManager", "EmbedderResource", "PostgresResource", "RetentionResource", "SourceResource"]
