from __future__ import annotations

from enum import Enum
from typing import Any, Literal, cast

from dagster import ConfigurableResource
from pydantic import Field

from pipeline.errors import ConfigError
from pipeline.ingest.collection import CollectionOptions
from pipeline.ingest.landing import DEFAULT_MAX_FILE_BYTES, DEFAULT_PATTERNS, Landing
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.object_storage import StorageOptions
from pipeline.ingest.parse_pool import ParseLimits
from pipeline.ingest.permissions import PermissionSettings
from pipeline.ingest.planning import ReadOptions
from pipeline.ingest.readers.ocr import OcrOptions
from pipeline.settings import load_settings

SourceMode = Literal["days", "collection"]


class Mode(Enum):
    """How the landing is read (member names are what run config and the UI show)."""
    days = "days"
    collection = "collection"


class SourceResource(ConfigurableResource):
    """The landing zone, on local disk or in object storage, and how its files are read: one
    ``YYYY-MM-DD/`` folder (or key prefix) per ingest day (``mode="days"``), or one living folder or
    prefix mirrored by a snapshot on each run (``mode="collection"``). Credentials for object storage come from the
    provider's standard chain (environment variables, profile, instance role) unless given here,
    preferably as Dagster ``EnvVar``s; they never show in logs, metadata or dead letters."""

    landing_dir: str | None = Field(default=None, description=(
        "a path or file:// URL, or s3://bucket/prefix, gs://bucket/prefix, az://container/prefix "
        "(abfs://); empty = $DOCVEC_LANDING_DIR, else $DOCVEC_HOME/landing"))
    mode: Mode | None = Field(default=None, description=(
        "days: one YYYY-MM-DD/ folder per ingest day, the window drops days; collection: landing_dir is one "
        "living folder or prefix, each run mirrors it as it is (added, changed and deleted files) and the window "
        "keeps history only. Empty = $DOCVEC_SOURCE_MODE, else days"))
    max_deleted_share: float = Field(default=0.5, gt=0, le=1, description=(
        "collection mode: a run that finds more than this share of the stored documents gone (of at least 10) is "
        "refused, not applied (a half-mounted share or a wrong prefix); 1 allows any"))
    permissions: bool = Field(default=False, description=(
        "documents that name no readers (front matter readers, a .docvec-readers sidecar) get default_readers; "
        "off: everyone may read them, as before permissions existed"))
    default_readers: list[str] = Field(default_factory=list, description=(
        "with permissions on, who may read a document that names no readers (e.g. [\"group:staff\"]); "
        "empty = nobody (deny by default)"))
    patterns: list[str] = Field(default=list(DEFAULT_PATTERNS), description="file globs read in each day folder")
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, ge=1, description="larger files are dead-lettered")
    max_chunks_per_document: int = Field(default=10_000, ge=1, description="documents with more chunks are dead-lettered")
    parse_timeout_seconds: float = Field(default=ParseLimits.seconds, gt=0, description=(
        "a file whose parser runs longer is stopped and dead-lettered (PDF, Office, EPUB and HTML files are "
        "parsed in worker processes)"))
    parse_memory_mb: int = Field(default=ParseLimits.memory_mb, ge=256, description=(
        "address space a parse worker may use for one file; a file that needs more is dead-lettered"))
    parse_workers: int = Field(default=ParseLimits.workers, ge=0, description="parse workers; 0 = one per CPU core")
    ocr: bool = Field(default=OcrOptions.enabled, description=(
        "OCR the pages of PDFs that have no text layer, and PNG, JPEG and TIFF images, when Tesseract is installed "
        "(pip install 'docvec[ocr]', apt-get install tesseract-ocr); off: such files are dead-lettered"))
    ocr_languages: str = Field(default=OcrOptions.languages, description=(
        "Tesseract languages joined by '+', e.g. 'deu+eng'; each needs Debian's tesseract-ocr-<lang>"))
    ocr_dpi: int = Field(default=OcrOptions.dpi, ge=72, le=600, description="resolution PDF pages are OCR'd at")
    ocr_max_pages: int = Field(default=OcrOptions.max_pages, ge=1, description=(
        "a file with more pages to OCR is dead-lettered before any is read (OCR also runs under the parse limits)"))
    endpoint_url: str | None = Field(default=None, description=(
        "object storage endpoint for MinIO or another S3-compatible store, e.g. http://minio:9000"))
    region: str | None = Field(default=None, description="the bucket's region (S3)")
    anonymous: bool = Field(default=False, description="read a public bucket without credentials")
    access_key_id: str | None = Field(default=None, description=(
        "S3 access key id (Azure: account name); empty = the provider's credential chain. Use EnvVar"))
    secret_access_key: str | None = Field(default=None, description=(
        "S3 secret access key (Azure: account key); empty = the provider's credential chain. Use EnvVar"))
    storage_options: dict[str, Any] = Field(default_factory=dict, description=(
        "further options for the fsspec filesystem (s3fs, gcsfs, adlfs), e.g. {\"profile\": \"ingest\"}"))
    storage_retries: int = Field(default=5, ge=1, description=(
        "attempts for a listing or download that fails transiently (throttling, timeout, 5xx)"))

    def parse_limits(self) -> ParseLimits:
        return ParseLimits(seconds=self.parse_timeout_seconds, memory_mb=self.parse_memory_mb,
                           workers=self.parse_workers, ocr=OcrOptions(self.ocr, self.ocr_languages, self.ocr_dpi,
                                                                       self.ocr_max_pages))

    def read_options(self) -> ReadOptions:
        """Which files of a day are read, and the limits each is read under."""
        return ReadOptions(tuple(self.patterns), self.max_file_bytes, self.parse_limits(),
                           PermissionSettings(self.permissions, tuple(self.default_readers)))

    def url(self) -> str:
        return self.landing_dir or load_settings().landing

    def source_mode(self) -> SourceMode:
        """The mode set here, else ``$DOCVEC_SOURCE_MODE``, else ``days``."""
        mode = self.mode.value if self.mode is not None else load_settings().source_mode
        if mode not in ("days", "collection"):
            raise ConfigError(f"source mode {mode!r} is not days or collection (DOCVEC_SOURCE_MODE, or the source "
                              "resource's mode)")
        return cast(SourceMode, mode)

    def collection_options(self) -> CollectionOptions | None:
        """How a collection is snapshotted; None in day-folder mode."""
        if self.source_mode() != "collection":
            return None
        return CollectionOptions(max_deleted_share=self.max_deleted_share)

    def landing(self) -> Landing:
        return open_landing(self.url(), StorageOptions(
            endpoint_url=self.endpoint_url, region=self.region, anonymous=self.anonymous, key=self.access_key_id,
            secret=self.secret_access_key, extra=self.storage_options, retries=self.storage_retries),
            collection=self.source_mode() == "collection")
