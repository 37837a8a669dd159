"""Opening a landing zone from what callers hold: a ``Landing`` already opened, a local path, or a URL
(``s3://…``, ``gs://…``, ``az://…``, ``file://…``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

import fsspec

from pipeline.errors import ConfigError
from pipeline.ingest.landing import Landing, LocalLanding
from pipeline.ingest.object_storage import PROTOCOLS, RemoteLanding, StorageOptions


def open_landing(url: str, options: StorageOptions | None = None, *, collection: bool = False) -> Landing:
    """The landing at ``url``: a local path or ``file://`` URL, or an object-storage URL (the protocol's
    fsspec package must be installed: ``pip install 'docvec[s3]'``, ``[gcs]`` or ``[azure]``); read as
    one living ``collection`` instead of day folders when asked."""
    parts = urlsplit(url)
    protocol = parts.scheme.lower()
    if protocol in ("", "file") or (len(protocol) == 1 and url[1:3] in (":\\", ":/")):  # a path (or C:\)
        return LocalLanding(Path(parts.path if protocol == "file" else url), collection=collection)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"landing_dir {url!r}: docvec reads local paths and s3://, gs://, az:// or abfs:// URLs")
    if parts.username or parts.password:
        raise ConfigError("landing_dir must not carry credentials in the URL: use the provider's environment "
                          "variables or the source resource's access_key_id/secret_access_key (Dagster EnvVar)")
    package, extra = PROTOCOLS[protocol]
    try:
        fs = fsspec.filesystem(protocol, **(options or StorageOptions()).fsspec_kwargs(protocol))
    except ImportError as exc:
        raise ConfigError(f"reading {protocol}:// needs {package}: pip install 'docvec[{extra}]'") from exc
    root = f"{parts.netloc}{parts.path}".rstrip("/")
    if not parts.netloc:
        raise ConfigError(f"landing_dir {url!r} names no bucket or container")
    return RemoteLanding(f"{protocol}://{root}", fs, root, options or StorageOptions(), collection=collection)


# What callers outside a run may hold for a landing (tests, benchmarks, the CLI): opened once, by
# ``as_landing``, at the edge; the engine itself passes an opened ``Landing``.
LandingRoot = Landing | Path | str


def as_landing(landing: LandingRoot) -> Landing:
    """A landing opened with the environment's credentials, unless it already is one."""
    return landing if isinstance(landing, Landing) else open_landing(str(landing))


def list_days(landing: LandingRoot) -> list[dt.date]:
    """The ingest days present in the landing, oldest first."""
    return as_landing(landing).days()
