"""The whole system as ``make dev`` runs it, on a real port: for the browser and CLI tests.

``live_system`` starts ``deploy/dev/run.py`` in a subprocess (embedded backends, a temporary data
directory, a free port on 127.0.0.1): the same uvicorn, gateway and services a user gets from
``make dev``. One per test session and xdist worker: the tests that use it are put in one xdist
group (``group_on_one_worker``; ``make test`` runs with ``--dist loadgroup``), so a run starts it
once. Each test registers a user of its own (``new_user``) for isolation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DEV_RUN = REPO / "deploy" / "dev" / "run.py"
#: Seconds for the composed system to answer /ready (imports and two small models on 2 cores).
START_TIMEOUT_S = 120.0
PASSWORD = "a long enough passphrase"
#: The xdist group of every test that uses the live system.
GROUP = "live-system"


@dataclass(frozen=True)
class LiveSystem:
    """A running ``make dev`` composition."""

    url: str
    data_dir: Path
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def new_user(self) -> tuple[str, str]:
        """Register a fresh account; its email and an access token."""
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        with self.client() as client:
            registered = client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            login = client.post(
                "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            return email, str(login.json()["access_token"])


def group_on_one_worker(items: list[pytest.Item], directory: Path) -> None:
    """Put the tests under ``directory`` in the live system's xdist group."""
    for item in items:
        if directory in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group(GROUP))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"make dev exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                if client.get(f"{url}/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling another process's readiness: no event to wait on
    pytest.fail(f"make dev was not ready within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    """``make dev`` on a free port with a temporary data directory; stopped after the session."""
    root = tmp_path_factory.mktemp("live-system")
    port = free_port()
    env = {
        **os.environ,
        "KGLAB_PORT": str(port),
        "KGLAB_DATA_DIR": str(root / "data"),
        "KGLAB_ENVIRONMENT": "development",
        "KGLAB_STORES": "embedded",
        "KGLAB_BUS": "memory",
        "KGLAB_LOG_LEVEL": "WARNING",
        # Every test signs up a user of its own from 127.0.0.1.
        "KGLAB_GATEWAY_RATE_LIMITS": (
            '[{"prefix": "/api/v1/auth/register", "limit": 1000, "window_s": 60, "per": "ip"}]'
        ),
    }
    # make dev runs on embedded stores and scans in process, whatever servers the shell exports.
    for name in [n for n in env if n.startswith("KGLAB_") and n.endswith("_URL")]:
        env.pop(name)
    log = root / "make-dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(DEV_RUN)], cwd=REPO, env=env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield LiveSystem(url=url, data_dir=root / "data", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
