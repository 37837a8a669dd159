"""PgBouncer in transaction mode in front of a test server (Debian package ``pgbouncer``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from tests.support.network import free_port
from tests.support.pg_cluster import grant, system_user

BINARY_HINT = "install it with `apt-get install pgbouncer` (scripts/test.sh does this as root)"


def binary() -> str:
    found = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None)
    if found is None:
        raise RuntimeError(f"pgbouncer is not installed: {BINARY_HINT}")
    return found


@contextmanager
def transaction_pool(server_url: str, folder: Path, pool_size: int = 3) -> Iterator[str]:
    """Start PgBouncer (pool_mode=transaction) forwarding every database to ``server_url``'s server;
    yield a client URL template with ``{database}`` to fill in."""
    backend = conninfo_to_dict(server_url)
    user = backend.get("user") or "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    target = " ".join(f"{key}={backend[key]}" for key in ("host", "port", "password") if backend.get(key))
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = {target} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {folder / "pgbouncer.log"}
""")
    runs_as = system_user()  # PgBouncer refuses to run as root
    grant(folder, runs_as)
    process = subprocess.Popen([binary(), str(folder / "pgbouncer.ini")], user=runs_as,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "pgbouncer.log").read_text() if (folder / "pgbouncer.log").exists() else ""
                    stderr = process.stderr.read() if process.stderr else ""
                    raise RuntimeError(f"pgbouncer did not start: {stderr}{log}") from exc
                time.sleep(0.1)
        yield f"postgresql://{user}@127.0.0.1:{port}/{{database}}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
