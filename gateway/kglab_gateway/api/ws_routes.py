"""WebSocket proxying: ``/ws/...`` authenticated by ``?token=``, bridged to the owning service."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import websockets
from fastapi import APIRouter, WebSocket
from starlette.types import ASGIApp, Message
from starlette.websockets import WebSocketDisconnect, WebSocketState

from kglab_gateway.config import GatewaySettings
from kglab_gateway.policy import GatewayPolicy, authorize
from kglab_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from kglab_shared.errors import DomainError
from kglab_shared.identity import IDENTITY_HEADER, Identity

router = APIRouter()
_POLICY_VIOLATION = 1008
_TRY_AGAIN_LATER = 1013


@router.websocket("/ws/jobs/{job_id}")
async def job_progress(websocket: WebSocket, job_id: str) -> None:
    """Relay a job's live progress from the ingestion service."""
    policy: GatewayPolicy = websocket.app.state.policy
    identity = await _signed_in(websocket, policy)
    if identity is None:
        return
    headers = [
        (IDENTITY_HEADER, policy.forwarded_identity(identity)),
        (REQUEST_ID_HEADER, get_correlation_id() or ""),
    ]
    path = f"/ws/jobs/{job_id}"
    in_process: ASGIApp | None = websocket.app.state.ws_apps.get("ingestion")
    if in_process is not None:
        await _bridge_in_process(websocket, in_process, path, headers)
    else:
        settings: GatewaySettings = websocket.app.state.settings
        url = settings.ingestion_url.replace("http://", "ws://").replace("https://", "wss://")
        await _bridge_network(websocket, url + path, headers)


#: How often the live feed asks for news when there was none.
EVENTS_POLL_S = 1.0


@router.websocket("/ws/events")
async def events(websocket: WebSocket) -> None:
    """Every change to the caller's jobs and documents, live: the feed of
    ``GET /api/v1/events`` pushed as it grows. ``?after=`` resumes from an event's id, so a
    client that reconnects misses nothing."""
    policy: GatewayPolicy = websocket.app.state.policy
    identity = await _signed_in(websocket, policy)
    if identity is None:
        return
    await websocket.accept()
    ingestion: httpx.AsyncClient = websocket.app.state.upstreams.clients["ingestion"]
    cursor = websocket.query_params.get("after") or None
    gone = asyncio.create_task(_until_disconnected(websocket))
    try:
        while not gone.done():
            params = {"limit": "100", **({"after": cursor} if cursor else {})}
            answer = await ingestion.get(
                "/api/v1/events",
                params=params,
                headers={
                    IDENTITY_HEADER: policy.forwarded_identity(identity),
                    REQUEST_ID_HEADER: get_correlation_id() or "",
                },
            )
            if answer.status_code != 200:
                detail = answer.json().get("detail", "The event feed is unavailable.")
                await websocket.close(
                    code=_POLICY_VIOLATION if answer.status_code < 500 else _TRY_AGAIN_LATER,
                    reason=str(detail)[:120],
                )
                return
            page = answer.json()
            for event in page["events"]:
                await websocket.send_json(event)
            cursor = page["next_cursor"]
            if not page["events"]:
                await asyncio.wait({gone}, timeout=EVENTS_POLL_S)
    except (WebSocketDisconnect, RuntimeError):
        return
    except httpx.TransportError:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=_TRY_AGAIN_LATER, reason="The event feed is unavailable.")
    finally:
        gone.cancel()


async def _until_disconnected(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


async def _signed_in(websocket: WebSocket, policy: GatewayPolicy) -> Identity | None:
    """The caller of ``?token=``, allowed on this path; else the socket is refused (None)."""
    token = websocket.query_params.get("token", "")
    if not token:
        await _refuse(websocket, _POLICY_VIOLATION, "Pass your access token as ?token=.")
        return None
    try:
        identity = await policy.verify_token(token)
        authorize("WS", websocket.scope["path"], identity)
    except DomainError as exc:
        await _refuse(websocket, _POLICY_VIOLATION, exc.detail)
        return None
    return identity


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with a code and a readable reason: a close before the handshake
    completes reaches the client only as a bare HTTP 403."""
    await websocket.accept()
    await websocket.close(code=code, reason=reason[:120])


async def _bridge_network(client: WebSocket, url: str, headers: list[tuple[str, str]]) -> None:
    try:
        upstream = await websockets.connect(url, additional_headers=headers, open_timeout=5)
    except Exception:
        await _refuse(client, _TRY_AGAIN_LATER, "The ingestion service is unavailable.")
        return
    await client.accept()

    async def downstream() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await client.send_bytes(message)
            else:
                await client.send_text(message)

    async def upstream_pump() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async with upstream:
        await _first_done(downstream(), upstream_pump())
    code = upstream.close_code or 1000
    if client.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):
            await client.close(code=code, reason=upstream.close_reason or "")


async def _bridge_in_process(
    client: WebSocket, app: ASGIApp, path: str, headers: list[tuple[str, str]]
) -> None:
    """Run the service's WebSocket endpoint in this process, as ``make dev`` does."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": client.client,
        "server": client.scope.get("server"),
        "subprotocols": [],
        "state": {},
    }

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            await client.accept()
        elif kind == "websocket.send":
            if message.get("text") is not None:
                await client.send_text(message["text"])
            else:
                await client.send_bytes(message["bytes"])
        elif kind == "websocket.close":
            if client.application_state is WebSocketState.CONNECTED:
                await client.close(code=message.get("code", 1000), reason=message.get("reason"))
            else:
                await client.close(code=message.get("code", 1000))

    async def from_client() -> None:
        if client.application_state is not WebSocketState.CONNECTED:
            await asyncio.sleep(0)
        while True:
            try:
                message = await client.receive()
            except (RuntimeError, WebSocketDisconnect):
                message = {"type": "websocket.disconnect", "code": 1000}
            await inbox.put(
                message
                if message["type"] != "websocket.connect"
                else {"type": "websocket.receive", "text": ""}
            )
            if message["type"] == "websocket.disconnect":
                return

    async def run_service() -> None:
        await app(scope, receive, send)

    service: asyncio.Task[None] = asyncio.create_task(run_service())
    pump: asyncio.Task[None] | None = None
    try:
        while client.application_state is WebSocketState.CONNECTING and not service.done():
            await asyncio.sleep(0.01)
        if client.application_state is WebSocketState.CONNECTED:
            pump = asyncio.create_task(from_client())
        await service
    finally:
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        if client.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await client.close()


async def _first_done(*coroutines: Any) -> None:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
