"""Landing zones in object storage through fsspec: S3 and S3-compatible stores such as MinIO (s3fs),
Google Cloud Storage (gcsfs), Azure Blob Storage and ADLS Gen2 (adlfs). Listings give each object's
key, size and ETag or generation, so an unchanged day downloads nothing. A changed day downloads only
the objects it must read, streamed to a staging file and never over ``max_file_bytes``. Credentials
come from the provider's usual chain (environment, profile, instance role) or from the options;
they never appear in a message, a log line or a dead letter."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pipeline.errors import BadInputError, ConfigError, DocvecError, ListingError
from pipeline.ingest.landing import (
    DEFAULT_PATTERNS,
    READERS_SIDECAR,
    CheckedFile,
    Landing,
    LandingFile,
    require_format,
    same_stamp,
    too_large,
    visible,
)

T = TypeVar("T")
# protocol -> (fsspec implementation package, docvec extra)
PROTOCOLS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
             "az": ("adlfs", "azure"), "abfs": ("adlfs", "azure"), "abfss": ("adlfs", "azure")}
_TRANSIENT_ERRNOS = frozenset({errno.EBUSY, errno.EAGAIN, errno.ETIMEDOUT, errno.EREMOTEIO, errno.ECONNRESET,
                               errno.ECONNABORTED, errno.EPIPE})
_BLOCK = 8 * 1024 * 1024
_MD5_ETAG = re.compile(r'"?[0-9a-fA-F]{32}"?')  # a single-part upload's ETag: the MD5 of its bytes
# An object's own readers (pipeline/ingest/permissions.py): S3's x-amz-meta-docvec-readers, GCS custom
# metadata; Azure metadata names take no hyphen.
READERS_METADATA = ("docvec-readers", "docvec_readers")


class StorageUnavailable(DocvecError):
    """Object storage kept failing transiently (throttling, timeouts, 5xx) after every retry."""


@dataclass(frozen=True)
class StorageOptions:
    """How to reach the store. ``key``/``secret`` (or the provider's own chain when empty) never show in
    a repr; ``extra`` goes to the fsspec filesystem as is."""
    endpoint_url: str | None = None  # MinIO, Ceph, R2, a local test server
    region: str | None = None
    anonymous: bool = False
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    retries: int = 5  # attempts for a transient error, with exponential backoff
    backoff_seconds: float = 0.5

    def fsspec_kwargs(self, protocol: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if protocol in ("s3", "s3a"):
            client: dict[str, Any] = {}
            if self.endpoint_url:
                client["endpoint_url"] = self.endpoint_url
            if self.region:
                client["region_name"] = self.region
            kwargs.update(anon=self.anonymous, client_kwargs=client)
            if self.key or self.secret:
                kwargs.update(key=self.key, secret=self.secret)
        elif protocol in ("gs", "gcs"):
            if self.anonymous:
                kwargs["token"] = "anon"
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
        else:  # Azure
            if self.key:
                kwargs["account_name"] = self.key
            if self.secret:
                kwargs["account_key"] = self.secret
            if self.anonymous:
                kwargs["anon"] = True
        kwargs.update(self.extra)
        return kwargs


def _replaced_types() -> tuple[type[BaseException], ...]:
    """Errors that mean an object changed between its listing and its read (s3fs checks the ETag)."""
    try:
        from s3fs.utils import FileExpired
    except ImportError:
        return ()
    return (FileExpired,)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, *_replaced_types())):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def retrying(operation: Callable[[], T], what: str, options: StorageOptions) -> T:
    """``operation``, retried with exponential backoff while it fails transiently; then one clear error."""
    for attempt in range(1, options.retries + 1):
        try:
            return operation()
        except Exception as exc:
            if not _transient(exc):
                raise
            if attempt == options.retries:
                raise StorageUnavailable(
                    f"{what} failed {options.retries} times in a row ({type(exc).__name__}: {exc}); the store is "
                    "throttling or unavailable: retry the run later") from exc
            time.sleep(options.backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


class RemoteLanding(Landing):
    """A bucket (or container) and prefix, through an fsspec filesystem."""

    def __init__(self, url: str, fs: Any, root: str, options: StorageOptions, *, collection: bool = False) -> None:
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")
        self.options = options
        self.collection = collection

    def _call(self, operation: Callable[[], T], what: str) -> T:
        try:
            return retrying(operation, what, self.options)
        except PermissionError as exc:
            raise ConfigError(
                f"{what}: access denied by the store ({_first_line(exc)}). Check the credentials docvec runs with "
                "(for S3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role; or the source "
                "resource's access_key_id/secret_access_key) and that they may list and read this prefix.") from exc
        except FileNotFoundError as exc:
            bucket = self.root.split("/", 1)[0]
            if "/" in self.root and self._exists(bucket):
                raise self._missing_root() from exc
            raise ConfigError(
                f"{what}: the bucket or container {bucket!r} does not exist ({_first_line(exc)}). Create it, or fix "
                "the source resource's landing_dir (and endpoint_url for MinIO or another S3-compatible store).") from exc

    def days(self) -> list[dt.date]:
        self.fs.invalidate_cache()  # fsspec caches listings per process; a landing zone changes
        entries = self._call(lambda: self.fs.ls(self.root, detail=True), f"listing {self.url}")
        found = set()
        for entry in entries:
            if entry.get("type") == "directory":
                try:
                    found.add(dt.date.fromisoformat(PurePosixPath(entry["name"]).name))
                except ValueError:
                    continue
        return sorted(found)

    def prefix(self, day: dt.date) -> str:
        return self.root if self.collection else f"{self.root}/{day.isoformat()}"

    def _exists(self, path: str) -> bool:
        return bool(self._call(lambda: self.fs.exists(path), f"listing {self.url}"))

    def _missing_root(self) -> ConfigError:
        if self.collection:
            return ConfigError(
                f"collection {self.url} does not exist: nothing is stored under that prefix. Fix the source "
                "resource's landing_dir (or DOCVEC_LANDING_DIR); a missing prefix is never read as an empty collection.")
        return ConfigError(
            f"landing {self.url} does not exist: nothing is stored under that prefix. Fix the source resource's "
            "landing_dir (or DOCVEC_LANDING_DIR), or upload one YYYY-MM-DD/ folder per day under it.")

    def has_day(self, day: dt.date) -> bool:
        # A prefix is there while any object is below it, or its folder marker ("YYYY-MM-DD/", or a hidden
        # ".keep" in it): the way to land an empty day in a store that has no empty folders.
        self.fs.invalidate_cache()
        if self._exists(self.prefix(day)):
            return True
        if not self._exists(self.root):
            raise self._missing_root()
        return False

    def holds_undated_files(self) -> bool:
        if self.days():
            return False
        entries = self._call(lambda: self.fs.ls(self.root, detail=True), f"listing {self.url}")
        return any(visible(PurePosixPath(entry["name"]).name, DEFAULT_PATTERNS) for entry in entries)

    def same_content(self, file: LandingFile, stored_stamp: str | None) -> bool:
        """Also when only the modification time moved (``aws s3 sync``, a re-upload of the same bytes): an
        S3 ETag of 32 hex digits without a part count is the MD5 of the object's bytes, so the same one
        at the same size is the same content. Other versions (multipart ETags, GCS generations, Azure
        ETags) change on any write: such an object is downloaded and its bytes hashed instead."""
        if not stored_stamp or same_stamp(file, stored_stamp):
            return bool(stored_stamp)
        size, version, *_ = [*file.stamp.split("\x1f"), "", ""]
        stored_size, stored_version, *_ = [*stored_stamp.split("\x1f"), "", ""]
        return size == stored_size and version == stored_version and _MD5_ETAG.fullmatch(version) is not None

    def files(self, day: dt.date, patterns: Sequence[str] = DEFAULT_PATTERNS) -> list[LandingFile]:
        prefix = self.prefix(day)
        # Whole cache: clearing a prefix leaves its subfolders' entries, whose stale ETags a later read of
        # a replaced object would then trip over.
        self.fs.invalidate_cache()
        try:
            listing = self._call(lambda: self.fs.find(prefix, detail=True, withdirs=False),
                                 f"listing {self.day_url(day)}")
        except StorageUnavailable as exc:
            raise StorageUnavailable(f"{exc}. Nothing was read or deleted: a partial listing is never used.") from exc
        except DocvecError:
            raise
        except Exception as exc:  # a page of the listing failed: never read the pages before it as the whole
            raise ListingError(
                f"listing {self.day_url(day)} failed ({type(exc).__name__}: {_first_line(exc)}); nothing was read or "
                "deleted. Retry the run once the store answers again.") from exc
        files = []
        for key, info in listing.items():
            if info.get("type", "file") != "file" or not key.startswith(prefix + "/"):
                continue
            rel = key[len(prefix) + 1:]  # the object's key below the day: an id, never a local path
            if not visible(rel, patterns):
                continue
            version = info.get("ETag") or info.get("etag") or info.get("generation") or info.get("version_id") or ""
            modified = info.get("LastModified") or info.get("last_modified") or info.get("updated") or ""
            files.append(LandingFile(rel, int(info.get("size") or 0), f"{info.get('size')}\x1f{version}\x1f{modified}",
                                     key))
        return sorted(files, key=lambda f: f.rel)

    def check(self, day: dt.date, file: LandingFile, max_bytes: int, staging: Path) -> CheckedFile:
        source_uri = self.source_uri(day, file)
        require_format(source_uri, PurePosixPath(file.rel).name)
        if file.size > max_bytes:
            raise too_large(source_uri, file.size, max_bytes)
        # The staging name comes from a hash of the key, never from the key: "../", "/etc/…" or odd
        # characters in a key cannot reach outside the staging folder.
        target = staging / (hashlib.sha256(file.location.encode()).hexdigest()[:24] + PurePosixPath(file.rel).suffix)
        with _object_read(source_uri):
            digest, size = retrying(lambda: self._download(file.location, target, max_bytes, source_uri),
                                    f"reading {self.url}/{source_uri}", self.options)
        return CheckedFile(target, file.rel, source_uri, size, digest, file.stamp)

    def readers_metadata(self, day: dt.date, checked: CheckedFile) -> str | None:
        """The object's ``docvec-readers`` metadata: one HEAD (S3; GCS and Azure give their custom metadata
        with the object's info), made only for an object about to be parsed. An object replaced since it
        was listed (another version than the one downloaded) is a dead letter, as during its read."""
        key = f"{self.prefix(day)}/{checked.doc_id}"
        with _object_read(checked.source_uri):
            version, metadata = retrying(lambda: self._object_metadata(key),
                                         f"reading the metadata of {self.url}/{checked.source_uri}", self.options)
        listed = [*checked.stamp.split("\x1f"), ""][1]
        if listed and version and version != listed:
            raise BadInputError(checked.source_uri, "was deleted or replaced while the day was being read",
                                "rerun the day once uploads to it have finished")
        found = {name.lower(): value for name, value in metadata.items()}
        values = [found[name] for name in READERS_METADATA if name in found]
        return str(values[0]) if values else None

    def _object_metadata(self, key: str) -> tuple[str, Mapping[str, Any]]:
        """The object's version (ETag or generation) and its user metadata, from the store itself."""
        if hasattr(self.fs, "call_s3"):  # s3fs: neither listings nor its cached info carry user metadata
            bucket, name, version_id = self.fs.split_path(key)
            head = self.fs.call_s3("head_object", self.fs.kwargs, Bucket=bucket, Key=name,
                                   **({"VersionId": version_id} if version_id else {}))
            return str(head.get("ETag") or ""), head.get("Metadata") or {}
        info = self.fs.info(key)  # gcsfs, adlfs: the object's custom metadata is part of its info
        version = info.get("ETag") or info.get("etag") or info.get("generation") or info.get("version_id") or ""
        return str(version), info.get("metadata") or {}

    def control_file(self, day: dt.date, name: str) -> LandingFile | None:
        if self.collection and name != READERS_SIDECAR:  # a collection says what went by not holding it any more
            return None
        key = f"{self.prefix(day)}/{name}"

        def entries() -> list[dict[str, Any]]:
            # A listing of the day's top level (answered from the listing ``files`` just made when fsspec
            # kept it), never a HEAD: an unchanged day stays decided by listings alone.
            try:
                return list(self.fs.ls(self.prefix(day), detail=True))
            except FileNotFoundError:
                return []

        found = [e for e in self._call(entries, f"listing {self.url}/{day.isoformat()}/")
                 if e.get("name", "").rstrip("/") == key and e.get("type", "file") == "file"]
        if not found:
            return None
        info = found[0]
        version = info.get("ETag") or info.get("etag") or info.get("generation") or info.get("version_id") or ""
        modified = info.get("LastModified") or info.get("last_modified") or info.get("updated") or ""
        return LandingFile(name, int(info.get("size") or 0), f"{info.get('size')}\x1f{version}\x1f{modified}", key)

    def read_control(self, day: dt.date, file: LandingFile, max_bytes: int) -> bytes:
        source_uri = self.source_uri(day, file)
        if file.size > max_bytes:
            raise too_large(source_uri, file.size, max_bytes)
        with _object_read(source_uri):
            data = bytes(retrying(lambda: self.fs.cat_file(file.location), f"reading {self.url}/{source_uri}",
                                  self.options))
        if len(data) > max_bytes:
            raise too_large(source_uri, len(data), max_bytes)
        return data

    def _download(self, key: str, target: Path, max_bytes: int, source_uri: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open(key, "rb", block_size=_BLOCK) as remote, target.open("wb") as local:
            for block in iter(lambda: remote.read(_BLOCK), b""):
                size += len(block)
                if size > max_bytes:  # it grew since it was listed
                    raise too_large(source_uri, size, max_bytes)
                digest.update(block)
                local.write(block)
        return digest.hexdigest(), size


@contextmanager
def _object_read(source_uri: str) -> Iterator[None]:
    """An object deleted, replaced or refused while it is read becomes a dead letter naming it and the fix."""
    gone: tuple[type[BaseException], ...] = (FileNotFoundError, *_replaced_types())
    try:
        yield
    except gone as exc:
        raise BadInputError(source_uri, "was deleted or replaced while the day was being read",
                            "rerun the day once uploads to it have finished") from exc
    except PermissionError as exc:
        raise BadInputError(source_uri, f"cannot be read (access denied: {_first_line(exc)})",
                            "allow docvec's credentials to read the objects of the landing prefix") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
