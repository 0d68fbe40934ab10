"""A real Prefect server (SQLite) on a free port of 127.0.0.1, for the flow tests and the flow benchmark."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def prefect_server(home: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``prefect server start`` with its own ``PREFECT_HOME`` (its log in ``home/server.log``), wait until
    it answers, yield its API URL, and stop it. Raises RuntimeError with the log's tail when it does not start."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**(env or os.environ), "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": api}
    with open(home / "server.log", "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
                                   "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(120):
                if server.poll() is not None or _healthy(api):
                    break
                time.sleep(0.5)
            if server.poll() is not None or not _healthy(api):
                raise RuntimeError("Prefect server did not start: " + (home / "server.log").read_text()[-2000:])
            yield api
        finally:
            server.terminate()
            server.wait(timeout=30)


def _healthy(api: str) -> bool:
    try:
        urllib.request.urlopen(f"{api}/health", timeout=2)
        return True
    except OSError:
        return False
