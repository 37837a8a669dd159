from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.ingest.landing import DEFAULT_MAX_FILE_BYTES, DEFAULT_PATTERNS
from pipeline.ingest.parse_pool import ParseLimits
from pipeline.settings import load_settings


class SourceResource(ConfigurableResource):
    """The landing directory: one ``YYYY-MM-DD/`` folder per ingest day, and how its files are read."""

    landing_dir: str | None = Field(default=None, description="empty = $DOCVEC_HOME/landing")
    patterns: list[str] = Field(default=list(DEFAULT_PATTERNS), description="file globs read in each day folder")
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, ge=1, description="larger files are dead-lettered")
    max_chunks_per_document: int = Field(default=10_000, ge=1, description="documents with more chunks are dead-lettered")
    parse_timeout_seconds: float = Field(default=ParseLimits.seconds, gt=0, description=(
        "a file whose parser runs longer is stopped and dead-lettered (PDF, Office, EPUB and HTML files are "
        "parsed in worker processes)"))
    parse_memory_mb: int = Field(default=ParseLimits.memory_mb, ge=256, description=(
        "address space a parse worker may use for one file; a file that needs more is dead-lettered"))
    parse_workers: int = Field(default=ParseLimits.workers, ge=0, description="parse workers; 0 = one per CPU core")

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(seconds=self.parse_timeout_seconds, memory_mb=self.parse_memory_mb,
                           workers=self.parse_workers)

    def root(self) -> Path:
        return Path(self.landing_dir).expanduser().resolve() if self.landing_dir else load_settings().landing_dir
