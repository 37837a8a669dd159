"""A Prometheus Pushgateway for tests (Debian package ``prometheus-pushgateway``, installed when missing
as root, like the test command's other system packages), on a free loopback port, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.network import free_port
from tests.support.processes import stop, wait_until_answering

PACKAGE = "prometheus-pushgateway"
HINT = f"install it with `apt-get install {PACKAGE}` (as root)"


class PushgatewayUnavailable(RuntimeError):
    """The Pushgateway is not installed and cannot be installed here."""


def binary() -> str:
    """The Pushgateway's binary, installing its Debian package when it is missing and this runs as root."""
    found = shutil.which(PACKAGE) or shutil.which("pushgateway")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "install", "-y", "-q", PACKAGE], ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", PACKAGE]):
            subprocess.run(command, env=quiet, capture_output=True, text=True, check=False, timeout=600)
            found = shutil.which(PACKAGE)
            if found:
                break
    if found is None:
        raise PushgatewayUnavailable(f"the Prometheus Pushgateway is not installed: {HINT}")
    return found


def scrape(base: str) -> str:
    """The gateway's own ``/metrics``: every pushed group, as Prometheus would scrape it."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        return str(response.read().decode())


@contextmanager
def pushgateway(folder: Path) -> Iterator[str]:
    """A Pushgateway on 127.0.0.1 (no persistence); yields its base URL once it answers."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / f"pushgateway-{port}.log").open("w")
    process = subprocess.Popen([binary(), f"--web.listen-address=127.0.0.1:{port}"], stdout=log,
                               stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(lambda: scrape(base) is not None, process, "the Pushgateway", Path(log.name), seconds=30)
        yield base
    finally:
        stop(process, seconds=10)
        log.close()
