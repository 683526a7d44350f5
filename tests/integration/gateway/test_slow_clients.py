"""Slow clients (issue 13): half-sent headers and stalled bodies are cut off in bounded time.

A real uvicorn on a loopback port, with the protocol and middleware the image runs, driven by
raw sockets as the attacker's script was.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from kglab_gateway.deadlines import BodyDeadlineMiddleware
from kglab_shared.serving import GuardedHttpProtocol

REPO = Path(__file__).resolve().parents[3]
HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole body, answer its length."""
    assert scope["type"] == "http"
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(GuardedHttpProtocol, "header_timeout_s", HEADER_TIMEOUT_S)
    app = BodyDeadlineMiddleware(echo_length, timeout_s=BODY_TIMEOUT_S)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=GuardedHttpProtocol,
        lifespan="off",
        log_level="critical",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    port: int = server.servers[0].sockets[0].getsockname()[1]
    yield port
    server.should_exit = True
    await asyncio.wait_for(task, 5)


async def _read_until_closed(reader: asyncio.StreamReader, *, within_s: float) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection open."""
    return await asyncio.wait_for(reader.read(), within_s)


async def test_half_sent_headers_are_answered_408_and_closed(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    started = time.monotonic()
    writer.write(b"GET /api/v1/documents HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
    await writer.drain()
    answer = await _read_until_closed(reader, within_s=HEADER_TIMEOUT_S + 3)
    assert answer.startswith(b"HTTP/1.1 408")
    assert HEADER_TIMEOUT_S * 0.8 <= time.monotonic() - started < HEADER_TIMEOUT_S + 3
    writer.close()


async def test_a_silent_connection_is_closed(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    answer = await _read_until_closed(reader, within_s=HEADER_TIMEOUT_S + 3)
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_kept_alive_connection_gets_the_deadline_for_each_request(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 3\r\n\r\nabc")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert first.startswith(b"HTTP/1.1 200")
    assert await asyncio.wait_for(reader.readexactly(1), 3) == b"3"
    # Well past the deadline of the first request's headers, still served: the deadline is per
    # request. Then half of a second request's headers: cut off.
    await asyncio.sleep(HEADER_TIMEOUT_S * 1.5)
    writer.write(b"GET / HTTP/1.1\r\nHo")
    await writer.drain()
    answer = await _read_until_closed(reader, within_s=HEADER_TIMEOUT_S + 3)
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_stalled_body_is_answered_408(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    started = time.monotonic()
    writer.write(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), BODY_TIMEOUT_S + 3)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"application/problem+json" in answer
    assert b"stopped arriving" in answer
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3
    writer.close()


async def test_a_slow_but_moving_body_is_read_whole(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 40\r\n\r\n")
    # Longer in all than the deadline, but never a gap as long as it.
    for _ in range(4):
        writer.write(b"x" * 10)
        await writer.drain()
        await asyncio.sleep(BODY_TIMEOUT_S / 2)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert answer.startswith(b"HTTP/1.1 200")
    assert await asyncio.wait_for(reader.readexactly(2), 3) == b"40"
    writer.close()


async def test_many_half_sent_headers_do_not_outlive_the_deadline(server: int) -> None:
    sockets = []
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", server))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
        sockets.append(sock)
    await asyncio.sleep(HEADER_TIMEOUT_S + 1.0)
    loop = asyncio.get_running_loop()
    closed = 0
    for sock in sockets:
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 3)
        rest = b"-"
        while rest:
            rest = await asyncio.wait_for(loop.sock_recv(sock, 4096), 3)
        closed += data.startswith(b"HTTP/1.1 408")
        sock.close()
    assert closed == len(sockets)


async def test_connections_per_client_can_be_bounded(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GuardedHttpProtocol, "max_connections_per_client", 3)
    held = [await asyncio.open_connection("127.0.0.1", server) for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    assert await asyncio.wait_for(reader.read(), 3) == b""  # closed at once, nothing said
    writer.close()
    for _, held_writer in held:
        held_writer.close()
        await held_writer.wait_closed()
    await asyncio.sleep(0.1)
    # The count follows closed connections: a new one is served.
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)).startswith(b"HTTP/1.1 200")
    writer.close()


def test_the_image_runs_every_service_with_the_guard_and_a_connection_bound() -> None:
    dockerfile = REPO.joinpath("Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith('CMD ["/bin/sh"'))
    assert "--http kglab_shared.serving:GuardedHttpProtocol" in cmd
    assert re.search(r"--limit-concurrency \\\"\$\{KGLAB_HTTP_LIMIT_CONCURRENCY:-\d+\}", cmd)
