"""``WS /ws/jobs/{id}``: token in the query, relayed in-process (make dev) and over the network."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from kglab_auth.main import create_app as create_auth
from kglab_gateway.config import GatewaySettings
from kglab_gateway.main import create_app as create_gateway
from kglab_shared.identity import IDENTITY_HEADER, IdentityCodec
from kglab_shared.settings import DEVELOPMENT_SECRET
from tests.isolation import free_port

PASSWORD = "a long enough passphrase"


async def progress(websocket: WebSocket) -> None:
    """Stands in for the ingestion service's endpoint: checks the forwarded identity."""
    codec = IdentityCodec(DEVELOPMENT_SECRET)
    identity = codec.verify(websocket.headers[IDENTITY_HEADER])
    await websocket.accept()
    job_id = websocket.path_params["job_id"]
    for percent in (0, 50, 100):
        await websocket.send_json({"job_id": job_id, "progress": percent, "user": identity.user_id})
    try:
        echo = await websocket.receive_text()
        await websocket.send_json({"echo": echo})
    except WebSocketDisconnect:
        return
    await websocket.close(code=1000)


fake_ingestion = Starlette(routes=[WebSocketRoute("/ws/jobs/{job_id}", progress)])


@pytest.fixture
def network_ingestion() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake_ingestion, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ingestion_url: str | None) -> TestClient:
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KGLAB_STORES", "embedded")
    auth = create_auth()
    settings = GatewaySettings(ingestion_url=ingestion_url or "http://127.0.0.1:9")
    gateway = create_gateway(
        settings,
        transports={"auth": httpx.ASGITransport(app=auth)},
        ws_apps={} if ingestion_url else {"ingestion": fake_ingestion},
        hosted=[auth.router.lifespan_context(auth)],
    )
    return TestClient(gateway, client=("127.0.0.1", 50000))


def sign_in(client: TestClient) -> tuple[str, str]:
    client.post("/api/v1/auth/register", json={"email": "ws@example.com", "password": PASSWORD})
    tokens = client.post(
        "/api/v1/auth/login", data={"username": "ws@example.com", "password": PASSWORD}
    ).json()
    me = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    return tokens["access_token"], str(me["id"])


@pytest.mark.parametrize("where", ["in-process", "network"])
def test_progress_is_relayed_to_a_signed_in_user(
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("network_ingestion") if where == "network" else None
    with build(tmp_path, monkeypatch, url) as client:
        token, user_id = sign_in(client)
        with client.websocket_connect(f"/ws/jobs/job-7?token={token}") as socket:
            received = [socket.receive_json() for _ in range(3)]
            assert [m["progress"] for m in received] == [0, 50, 100]
            assert {m["user"] for m in received} == {user_id}
            assert {m["job_id"] for m in received} == {"job-7"}
            socket.send_text("hello")
            assert socket.receive_json() == {"echo": "hello"}


@pytest.mark.parametrize("query", ["", "?token=", "?token=not-a-token"])
def test_a_socket_without_a_valid_token_is_closed(
    query: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        build(tmp_path, monkeypatch, None) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(f"/ws/jobs/job-7{query}") as socket,
    ):
        socket.receive_json()
    assert closed.value.code == 1008
    assert closed.value.reason


def test_an_unreachable_service_closes_with_try_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with build(tmp_path, monkeypatch, f"http://127.0.0.1:{free_port()}") as client:
        token, _ = sign_in(client)
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect(f"/ws/jobs/job-7?token={token}") as socket,
        ):
            socket.receive_json()
        assert closed.value.code == 1013
