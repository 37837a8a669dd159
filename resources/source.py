from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.ingest.landing import DEFAULT_MAX_FILE_BYTES, DEFAULT_PATTERNS
from pipeline.settings import load_settings


class SourceResource(ConfigurableResource):
    """The landing directory: one ``YYYY-MM-DD/`` folder per ingest day."""

    landing_dir: str | None = Field(default=None, description="empty = $DOCVEC_HOME/landing")
    patterns: list[str] = Field(default=list(DEFAULT_PATTERNS), description="file globs read in each day folder")
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, ge=1, description="larger files are dead-lettered")
    max_chunks_per_document: int = Field(default=10_000, ge=1, description="documents with more chunks are dead-lettered")

    def root(self) -> Path:
        return Path(self.landing_dir).expanduser().resolve() if self.landing_dir else load_settings().landing_dir
