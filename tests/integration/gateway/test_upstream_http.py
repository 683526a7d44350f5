"""The gateway's own HTTP/1.1 client (kglab_gateway.upstream_http) against real TCP servers.

Each test starts a server on loopback that answers from a small script, so keep-alive, pool
limits, back-pressure, timeouts and every way a service can misbehave are exercised on real
sockets. The happy paths through the whole gateway are in test_network_relay.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from kglab_gateway.proxy import UnforwardableRequestError, UpstreamPool
from kglab_gateway.upstream_http import (
    UnsendableRequestError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamConnectTimeoutError,
    UpstreamHttpPool,
    UpstreamProtocolError,
    UpstreamReadTimeoutError,
)
from tests.isolation import free_port

Handler = Callable[["Script", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Script:
    """A loopback server that counts connections and requests and answers with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self.writers.append(writer)
        try:
            await self.handler(self, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                body = await reader.readexactly(int(line.split(b":")[1]))
                return head + body
        return head


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def every_request(reply: bytes) -> Handler:
    """A service that answers each request on a connection with ``reply``."""

    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await script.read_request(reader)
            writer.write(reply)
            await writer.drain()

    return handler


@asynccontextmanager
async def pool_for(
    handler: Handler, **options: float | None
) -> AsyncIterator[tuple[Script, UpstreamHttpPool]]:
    script = Script(handler)
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamHttpPool(
        "127.0.0.1",
        port,
        host_header=f"127.0.0.1:{port}",
        max_connections=int(options.get("max_connections", 4)),
        connect_timeout_s=options.get("connect_timeout_s", 2.0),
        read_timeout_s=options.get("read_timeout_s", 2.0),
        pool_timeout_s=options.get("pool_timeout_s"),
        idle_s=options.get("idle_s", 4.0),
    )
    try:
        yield script, pool
    finally:
        await pool.close()
        server.close()
        for writer in script.writers:
            writer.close()


async def get(pool: UpstreamHttpPool, target: str = "/x") -> tuple[int, bytes]:
    response = await pool.request("GET", target, [("accept", "*/*")], None)
    try:
        return response.status_code, await response.read()
    finally:
        await response.aclose()


async def test_keep_alive_reuses_one_connection_and_sends_a_well_formed_request() -> None:
    async with pool_for(every_request(ok(b"hello", b"x-service: yes\r\n"))) as (script, pool):
        response = await pool.request("POST", "/api/v1/things?a=1", [("x-one", "1")], b"{}")
        assert response.status_code == 200
        assert (b"x-service", b"yes") in response.headers
        assert await response.read() == b"hello"
        await response.aclose()
        assert await get(pool) == (200, b"hello")
        assert await get(pool) == (200, b"hello")
    assert script.connections == 1
    first = script.requests[0]
    assert first.startswith(b"POST /api/v1/things?a=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{pool.port}\r\n".encode() in first
    assert b"x-one: 1\r\n" in first
    assert b"content-length: 2\r\n" in first
    assert b"content-length" not in script.requests[1]


async def test_a_chunked_answer_is_read_whole_and_streamed() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await script.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"6\r\n world\r\n0\r\n\r\n")

    async with pool_for(handler) as (script, pool):
        assert await get(pool) == (200, b"hello world")
        response = await pool.request("GET", "/x", [], None)
        parts = [chunk async for chunk in response.aiter_raw()]
        await response.aclose()
        assert b"".join(parts) == b"hello world"
        assert await get(pool) == (200, b"hello world")
    assert script.connections == 1


async def test_a_large_answer_pauses_the_service_until_the_caller_reads() -> None:
    size = 16 * 1024 * 1024
    blob = bytes(range(256)) * (size // 256)

    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + blob)
        await writer.drain()

    async with pool_for(handler) as (script, pool):
        response = await pool.request("GET", "/big", [], None)
        # Nobody reads: the client stops reading at its high-water mark, so the service's
        # own send buffer fills up instead of the gateway's memory.
        await asyncio.sleep(0.3)
        assert script.writers[0].transport.get_write_buffer_size() > 0
        received = bytearray()
        async for chunk in response.aiter_raw():
            received.extend(chunk)
        await response.aclose()
        assert bytes(received) == blob


async def test_a_connection_close_answer_is_not_reused() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(ok(b"bye", b"connection: close\r\n"))
        await writer.drain()

    async with pool_for(handler) as (script, pool):
        assert await get(pool) == (200, b"bye")
        assert await get(pool) == (200, b"bye")
        assert pool.open_connections == 0
    assert script.connections == 2


async def test_an_answer_without_length_ends_with_the_connection() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    async with pool_for(handler) as (_script, pool):
        assert await get(pool) == (200, b"until the end")
        assert pool.open_connections == 0


async def test_an_interim_100_continue_is_skipped() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final"))
        await writer.drain()

    async with pool_for(handler) as (_script, pool):
        assert await get(pool) == (200, b"final")


async def test_a_service_closing_before_answering_is_a_closed_error() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)

    async with pool_for(handler) as (_script, pool):
        with pytest.raises(UpstreamClosedError):
            await get(pool)
        assert pool.open_connections == 0


async def test_a_truncated_answer_is_a_closed_error_not_a_short_body() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()

    async with pool_for(handler) as (_script, pool):
        response = await pool.request("GET", "/x", [], None)
        assert response.status_code == 200
        with pytest.raises(UpstreamClosedError):
            await response.read()
        await response.aclose()
        assert pool.open_connections == 0


async def test_a_malformed_answer_is_a_protocol_error() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with pool_for(handler) as (_script, pool):
        with pytest.raises(UpstreamProtocolError):
            await get(pool)
        assert pool.open_connections == 0


async def test_a_silent_service_is_a_read_timeout_and_its_connection_is_dropped() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        await asyncio.sleep(5)

    async with pool_for(handler, read_timeout_s=0.2) as (_script, pool):
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamReadTimeoutError):
            await get(pool)
        assert asyncio.get_running_loop().time() - started < 1.5
        assert pool.open_connections == 0


async def test_a_stall_in_the_middle_of_a_body_is_a_read_timeout() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(5)

    async with pool_for(handler, read_timeout_s=0.2) as (_script, pool):
        response = await pool.request("GET", "/x", [], None)
        with pytest.raises(UpstreamReadTimeoutError):
            await response.read()
        await response.aclose()
        assert pool.open_connections == 0


async def test_nobody_listening_is_a_connect_error() -> None:
    pool = UpstreamHttpPool(
        "127.0.0.1",
        free_port(),
        host_header="x",
        max_connections=2,
        connect_timeout_s=1.0,
        read_timeout_s=1.0,
    )
    with pytest.raises(UpstreamConnectError):
        await get(pool)
    assert pool.open_connections == 0
    await pool.close()


async def test_the_pool_never_opens_more_than_its_limit() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await script.read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(ok())

    async with pool_for(handler, max_connections=2) as (script, pool):
        results = await asyncio.gather(*(get(pool) for _ in range(10)))
        assert results == [(200, b"ok")] * 10
    assert script.most_open == 2
    assert script.connections == 2


async def test_waiting_for_a_busy_pool_times_out_with_the_connect_timeout() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        await asyncio.sleep(5)

    async with pool_for(handler, max_connections=1, connect_timeout_s=0.2) as (_script, pool):
        stuck = asyncio.create_task(get(pool))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamConnectTimeoutError):
            await get(pool)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        # The cancelled caller's connection was mid-exchange: closed, and its place is free.
        assert pool.open_connections == 0


async def test_a_cancelled_caller_frees_its_place_for_the_next() -> None:
    release = asyncio.Event()

    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await script.read_request(reader)
            if len(script.requests) == 1:
                await release.wait()
            writer.write(ok())

    async with pool_for(handler, max_connections=1) as (_script, pool):
        first = asyncio.create_task(get(pool))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(get(pool))
        await asyncio.sleep(0.05)
        first.cancel()
        assert await waiting == (200, b"ok")
        release.set()
        assert pool.open_connections == 1


async def test_a_connection_handed_to_a_caller_that_gave_up_goes_to_the_next() -> None:
    async with pool_for(every_request(ok()), max_connections=1) as (script, pool):
        held = await pool.request("GET", "/x", [], None)
        assert await held.read() == b"ok"
        second = asyncio.create_task(get(pool))
        third = asyncio.create_task(get(pool))
        await asyncio.sleep(0.05)
        await held.aclose()  # hands the connection to the second caller ...
        second.cancel()  # ... who gives up before running
        assert await third == (200, b"ok")
        with pytest.raises(asyncio.CancelledError):
            await second
        assert pool.open_connections == 1
    assert script.connections == 1


async def test_an_idle_connection_is_not_reused_after_its_idle_time() -> None:
    async with pool_for(every_request(ok()), idle_s=0.1) as (script, pool):
        assert await get(pool) == (200, b"ok")
        await asyncio.sleep(0.2)
        assert await get(pool) == (200, b"ok")
        assert pool.open_connections == 1
    assert script.connections == 2


async def test_a_connection_the_service_closed_while_idle_is_replaced() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(ok())
        await writer.drain()
        # Closed without saying so, as a keep-alive timeout on the service's side does.

    async with pool_for(handler) as (script, pool):
        assert await get(pool) == (200, b"ok")
        await asyncio.sleep(0.1)
        assert pool.open_connections == 0
        assert await get(pool) == (200, b"ok")
    assert script.connections == 2


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(ok())

    async with pool_for(handler) as (script, pool):
        for value in ("a\r\nx-injected: 1", "a\nb", "a\rb"):
            with pytest.raises(UnsendableRequestError):
                await pool.request("GET", "/x", [("x-evil", value)], None)
        with pytest.raises(UnsendableRequestError):
            await pool.request("GET", "/x", [("x-name", "snowman ☃")], None)
        assert pool.open_connections == 0
    assert script.connections == 0


async def test_a_stream_that_fails_gives_its_place_back_without_aclose() -> None:
    """A streaming response whose body raises never runs its background aclose(); the
    stream itself must not keep a place in the pool."""

    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 1000)
        await writer.drain()

    async with pool_for(handler, max_connections=1) as (_script, pool):
        response = await pool.request("GET", "/x", [], None)
        received: list[bytes] = []

        async def drain() -> None:
            async for chunk in response.aiter_raw():
                received.append(chunk)

        with pytest.raises(UpstreamClosedError):
            await drain()
        assert len(b"".join(received)) == 1000
        assert pool.open_connections == 0


async def test_bytes_from_an_idle_connection_drop_it() -> None:
    # One answer, then a second nobody asked for.
    async with pool_for(every_request(ok(b"asked") + ok(b"unasked"))) as (script, pool):
        response = await pool.request("GET", "/x", [], None)
        assert await response.read() == b"asked"
        await response.aclose()
        await asyncio.sleep(0.1)
        assert await get(pool) == (200, b"asked")
    assert script.connections == 2


async def test_a_caller_waits_for_a_busy_pool_up_to_the_pool_timeout_not_the_connect_one() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await script.read_request(reader)
            await asyncio.sleep(0.3)
            writer.write(ok())

    options = {"max_connections": 1, "connect_timeout_s": 0.05, "pool_timeout_s": 2.0}
    async with pool_for(handler, **options) as (script, pool):
        first = asyncio.create_task(get(pool))
        await asyncio.sleep(0.02)
        # Waits about 0.3 s for the one connection, far past the connect timeout.
        assert await get(pool) == (200, b"ok")
        assert await first == (200, b"ok")
    assert script.connections == 1


async def test_an_unsendable_header_is_a_readable_400_and_not_the_services_fault() -> None:
    """Through the gateway's pool: the caller's request is at fault, so the answer is a 400
    with a readable detail and the service's breaker counts nothing."""
    async with pool_for(every_request(ok())) as (script, lean):
        pool = UpstreamPool(
            {"auth": f"http://127.0.0.1:{lean.port}"},
            timeout_s=2.0,
            connect_timeout_s=1.0,
            max_connections=2,
            retries=2,
            breaker_threshold=1,
            breaker_reset_s=10.0,
        )
        try:
            with pytest.raises(UnforwardableRequestError) as caught:
                await pool.send("auth", "GET", "/x", headers=[("x-evil", "a\r\nb")], body=None)
            assert caught.value.status == 400
            assert "cannot be forwarded" in caught.value.detail
            assert pool.breakers["auth"].failures == 0
            assert script.connections == 0
            # The breaker stayed closed: the next, well-formed call goes through.
            response = await pool.send("auth", "GET", "/x", headers=[], body=None)
            assert await pool.read_whole("auth", response) == b"ok"
        finally:
            await pool.close()
