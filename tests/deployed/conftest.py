"""The deployed topology, driven from outside: separate processes (``make stack``) or the project's
containers, on the real servers of ``make servers``, through the gateway's network port.

``KGLAB_DEPLOYED_URL`` names a running deployment to test (``KGLAB_DEPLOYED_KIND``: ``processes``,
the default, or ``containers``; ``KGLAB_DEPLOYED_STACK``: its stack name). Without it, the session
starts its own stack with ``deploy/stack/run.py`` under a fresh name on free ports, and purges its
databases afterwards. The store inspectors read the stack's own databases, so every count below
is the stack's, not another test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from neo4j import GraphDatabase
from pymongo import MongoClient

from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "deploy" / "stack" / "run.py"
SERVERS = REPO / "deploy" / "local" / "servers.sh"
DATA = REPO / "tests" / "data"
PASSWORD = "a long enough passphrase"
START_TIMEOUT_S = 180.0
#: How long a fault test waits for the system to settle after the fault.
SETTLE_TIMEOUT_S = 240.0
RATE_LIMITS = (
    '[{"prefix": "/api/v1/auth/register", "limit": 1000, "window_s": 60, "per": "ip"},'
    ' {"prefix": "/api/", "limit": 6000, "window_s": 60, "per": "user"}]'
)
_REQUIRED = ("KGLAB_POSTGRES_URL", "KGLAB_REDIS_URL", "KGLAB_RABBITMQ_URL", "KGLAB_MONGO_URL")


def _free_port_base() -> int:
    """A gateway port with the five after it free too (each service's port)."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000, 10)
        try:
            for port in range(base, base + 6):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no six consecutive free ports")


@dataclass
class Deployment:
    """A running deployment: where its gateway is, and how to break it."""

    url: str
    name: str
    kind: str
    state_dir: Path
    servers: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ faults

    def pid(self, service: str) -> int:
        return int((self.state_dir / "run" / f"{service}.pid").read_text())

    def kill(self, service: str) -> None:
        """``kill -9`` of one service; its supervisor (the launcher, or the container
        runtime's restart policy) starts it again."""
        if self.kind == "containers":
            # Not `podman kill`: podman records that as a stop by the user, and its restart
            # policy then leaves the container stopped (podman 4.3, checked). A crash is a
            # SIGKILL from outside, as the kernel's OOM killer sends: to the container's PID 1
            # (its init), seen from the host; the restart policy starts the container again.
            found = subprocess.run(
                ["podman", "inspect", "--format", "{{.State.Pid}}", f"kglab-{self.name}-{service}"],
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            )
            pid = int(found.stdout.strip())
            if pid <= 0:  # not running: 0 would signal this test's own process group
                raise RuntimeError(f"{service}'s container is not running (pid {pid})")
            os.kill(pid, signal.SIGKILL)
            return
        os.kill(self.pid(service), signal.SIGKILL)

    def restart_server(self, server: str) -> None:
        subprocess.run(
            ["bash", str(SERVERS), "restart", server],
            check=True,
            capture_output=True,
            timeout=240,
        )

    # ------------------------------------------------------------------ stores

    def mongo(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.servers["KGLAB_MONGO_URL"], serverSelectionTimeoutMS=5000)

    def counts(self, owner_id: str) -> dict[str, int]:
        """What each store holds for one owner: documents and chunks (MongoDB), graph nodes
        (Neo4j), vectors (Qdrant's server when the stack has one)."""
        with self.mongo() as client:
            documents = client[f"{self.name}_documents"]
            found = {
                # A deleted document keeps a tombstone (no text, no chunks) that answers
                # GET .../deletion; only documents still stored count.
                "mongo_documents": documents["documents"].count_documents(
                    {"owner_id": owner_id, "status": "stored"}
                ),
                "mongo_chunks": documents["chunks"].count_documents({"owner_id": owner_id}),
            }
        url = httpx.URL(self.servers["KGLAB_NEO4J_URL"])
        with GraphDatabase.driver(
            f"bolt://{url.host}:{url.port}", auth=(url.username, url.password)
        ) as driver:
            records, _, _ = driver.execute_query(
                "MATCH (n {owner: $owner}) RETURN labels(n)[0] AS label, count(*) AS n",
                owner=owner_id,
            )
        for record in records:
            found[f"neo4j_{record['label'].lower()}"] = record["n"]
        if qdrant_url := self.servers.get("KGLAB_QDRANT_URL"):
            from qdrant_client import QdrantClient, models

            with QdrantClient(url=qdrant_url) as qdrant:
                owner = models.FieldCondition(
                    key="owner_id", match=models.MatchValue(value=owner_id)
                )
                found["qdrant_points"] = qdrant.count(
                    "kglab_chunks", count_filter=models.Filter(must=[owner]), exact=True
                ).count
        return found

    def blob_exists(self, content: bytes) -> bool:
        """Whether ingestion still keeps these raw bytes (GridFS, keyed by their SHA-256)."""
        with self.mongo() as client:
            files = client[f"{self.name}_ingestion"]["blobs.files"]
            return files.count_documents({"_id": hashlib.sha256(content).hexdigest()}) > 0


def _servers_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key.startswith("KGLAB_")}
    missing = [name for name in _REQUIRED if not env.get(name)]
    if missing:
        if os.environ.get("KGLAB_REQUIRE_BACKENDS") == "1":
            pytest.fail(f"the deployed suite needs {', '.join(missing)} (make servers)")
        pytest.skip(f"the deployed suite needs {', '.join(missing)}: run `make servers` first")
    return env


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    servers = _servers_env()
    if url := os.environ.get("KGLAB_DEPLOYED_URL"):
        name = os.environ.get("KGLAB_DEPLOYED_STACK", "stack")
        yield Deployment(
            url=url,
            name=name,
            kind=os.environ.get("KGLAB_DEPLOYED_KIND", "processes"),
            state_dir=REPO / ".kglab" / "stack" / name,
            servers=servers,
        )
        return
    name = f"deployed_{uuid.uuid4().hex[:8]}"
    port = _free_port_base()
    env = {
        **os.environ,
        "KGLAB_ENVIRONMENT": "test",
        "KGLAB_LOG_LEVEL": "WARNING",
        # One user per test, all from one address: the per-address sign-up limit would refuse
        # the suite's registrations, not a deployment defect.
        "KGLAB_GATEWAY_RATE_LIMITS": RATE_LIMITS,
    }
    command = [sys.executable, str(RUN), "up", "--name", name, "--port", str(port), "--quiet"]
    launcher = subprocess.Popen(command, env=env, cwd=REPO)
    state = REPO / ".kglab" / "stack" / name
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (state / "ready.json").exists():
            if launcher.poll() is not None:
                pytest.fail(f"deploy/stack/run.py exited with {launcher.returncode}; logs: {state}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the stack was not ready within {START_TIMEOUT_S:.0f} s; logs: {state}"
                )
            time.sleep(0.2)
        yield Deployment(
            url=f"http://127.0.0.1:{port}",
            name=name,
            kind="processes",
            state_dir=state,
            servers=servers,
        )
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [sys.executable, str(RUN), "purge", "--name", name],
                env=env,
                cwd=REPO,
                check=False,
                timeout=60,
                capture_output=True,
            )


@dataclass
class User:
    """A fresh user of the deployment, signed in."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    id: str

    async def upload(self, name: str, content: bytes) -> str:
        response = await self.client.post(
            "/api/v1/files", files={"file": (name, content)}, headers=self.headers
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def finished(self, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Poll the job until it is completed or failed. While a service restarts after a
        fault, the gateway answers 503 for it: a client waits and asks again."""
        latest: dict[str, Any] = {}

        async def done() -> bool:
            nonlocal latest
            response = await self.client.get(f"/api/v1/jobs/{job_id}", headers=self.headers)
            if response.status_code == 503:
                return False
            assert response.status_code == 200, response.text
            latest = dict(response.json())
            return latest["status"] in ("completed", "failed")

        await wait_until(done, timeout_s=timeout_s, step_s=0.1)
        return latest

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers)


async def sign_up(client: httpx.AsyncClient) -> User:
    email = f"deployed-{uuid.uuid4().hex[:12]}@example.com"
    for _ in range(5):
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        if registered.status_code != 503 or "retry-after" not in registered.headers:
            break
        # After a database restart, the first use of each pooled connection finds it dead
        # and answers 503 with Retry-After (the statement never ran): a client retries.
        await asyncio.sleep(min(2.0, float(registered.headers["retry-after"])))
    assert registered.status_code == 201, registered.text
    login = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    return User(client=client, headers=headers, id=str(me.json()["id"]))


@pytest.fixture
async def gateway(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment.url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def user(gateway: httpx.AsyncClient) -> User:
    """A new user, once every service is ready (a test after a fault starts whole)."""

    async def ready() -> bool:
        return (await gateway.get("/ready/system")).status_code == 200

    await wait_until(ready, timeout_s=SETTLE_TIMEOUT_S, step_s=0.5)
    return await sign_up(gateway)
