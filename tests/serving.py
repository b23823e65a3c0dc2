"""Start `codesense serve` as a user would (a subprocess on a free port) and wait until /healthz answers.

Shared by every test module that talks to the real Serve app; one place for the start, the health wait, the log
file (a file, not a pipe: an unread pipe would block the server) and the shutdown.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import CODESENSE_BIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_serve(config: str | Path, env: dict, log_dir: Path, timeout_s: float = 300) -> Iterator[str]:
    """`codesense serve --config CONFIG` on a free port; yields its base URL once /healthz is 200, stops it after."""
    port = free_port()
    log_path = Path(log_dir) / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([CODESENSE_BIN, "serve", "--config", str(config), "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout_s
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise AssertionError(log_path.read_text()[-3000:])
                if time.time() > deadline:
                    raise AssertionError("codesense serve did not become healthy: " + log_path.read_text()[-3000:])
                time.sleep(1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
