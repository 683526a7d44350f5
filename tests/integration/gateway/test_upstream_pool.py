"""The gateway's upstream pool (kglab_gateway.proxy: aiohttp behind httpx's transport
interface) against real TCP servers.

Each test starts a server on loopback that answers from a small script, so pool limits,
back-pressure, keep-alive expiry, HEAD answers, refused headers and a stream that breaks are
exercised on real sockets. The relay through the whole gateway is in test_network_relay.py;
retries, timeouts and the breaker in test_retries_and_cors.py and test_upstream_failures.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from kglab_gateway.proxy import UnforwardableRequestError, UpstreamPool, stream_body
from kglab_shared.errors import ServiceUnavailableError
from tests.waiting import wait_until

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
            writer.close()
            await writer.wait_closed()
            self.open -= 1

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return head + await reader.readexactly(int(line.split(b":")[1]))
        return head


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def condition() -> bool:
        return check()

    return condition


def ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def every_request(reply: bytes) -> Handler:
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
    handler: Handler, *, max_connections: int = 4, timeout_s: float = 2.0
) -> AsyncIterator[tuple[Script, UpstreamPool]]:
    script = Script(handler)
    server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool(
        {"document": f"http://127.0.0.1:{port}"},
        timeout_s=timeout_s,
        connect_timeout_s=1.0,
        max_connections=max_connections,
        retries=2,
        breaker_threshold=1,
        breaker_reset_s=10.0,
    )
    try:
        yield script, pool
    finally:
        await pool.close()
        server.close()
        for writer in script.writers:
            writer.close()


async def get(pool: UpstreamPool, target: bytes = b"/x") -> bytes:
    response = await pool.send("document", "GET", target, headers=[], body=None)
    return await pool.read_whole("document", response)


async def test_the_pool_never_opens_more_than_its_limit_and_reuses_connections() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await script.read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(ok())

    async with pool_for(handler, max_connections=2) as (script, pool):
        assert await asyncio.gather(*(get(pool) for _ in range(10))) == [b"ok"] * 10
    assert script.most_open == 2
    assert script.connections == 2
    assert len(script.requests) == 10


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
        response = await pool.send("document", "GET", b"/big", headers=[], body=None)
        # Nobody reads: the answer stays in the service's send buffer, not the gateway's memory.
        await wait_until(holds(lambda: script.writers[0].transport.get_write_buffer_size() > 0))
        received = bytearray()
        async for chunk in stream_body(response):
            received.extend(chunk)
        assert bytes(received) == blob


async def test_a_head_answer_has_no_body_and_keeps_the_connection() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            head = await script.read_request(reader)
            if head.startswith(b"HEAD "):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n")
            else:
                writer.write(ok(b"after"))

    async with pool_for(handler) as (script, pool):
        response = await pool.send("document", "HEAD", b"/x", headers=[], body=None)
        assert response.headers["content-length"] == "5000"
        assert await pool.read_whole("document", response) == b""
        assert await get(pool) == b"after"
    assert script.connections == 1


async def test_a_connection_the_service_closed_while_idle_is_replaced() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        writer.write(ok())
        await writer.drain()
        # Closed a little later without saying so, as a keep-alive timeout on the service's
        # side does (the caller sees it while the connection is idle in the pool).
        await asyncio.sleep(0.1)

    async with pool_for(handler) as (script, pool):
        assert await get(pool) == b"ok"
        await wait_until(holds(lambda: script.open == 0))
        # A POST is never sent twice, so the pool must not hand it the dead connection.
        response = await pool.send("document", "POST", b"/x", headers=[], body=b"{}")
        assert await pool.read_whole("document", response) == b"ok"
        await wait_until(holds(lambda: script.open == 0))
        assert await get(pool) == b"ok"
    assert script.connections == 3
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    "value", [b"a\r\nx-injected: 1", b"a\nb", b"a\rb", b"a\x00b", "caf\xe9".encode("latin-1")]
)
async def test_an_unsendable_header_is_a_400_and_not_the_services_fault(
    value: bytes,
) -> None:
    async with pool_for(every_request(ok())) as (script, pool):
        with pytest.raises(UnforwardableRequestError) as caught:
            await pool.send("document", "GET", b"/x", headers=[(b"x-evil", value)], body=None)
        assert caught.value.status == 400
        assert "cannot be forwarded" in caught.value.detail
        assert pool.breakers["document"].failures == 0
        assert script.requests == []
        # The breaker (threshold 1) stayed closed: the next, well-formed call goes through.
        assert await get(pool) == b"ok"


async def test_a_stream_that_breaks_gives_its_connection_back() -> None:
    """A streamed answer whose service dies mid-body frees its place in the pool, even though
    a Starlette StreamingResponse whose body raises never runs its background aclose()."""

    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await script.read_request(reader)
        if head.startswith(b"GET /broken "):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 1000)
            await writer.drain()
            return
        writer.write(ok())

    async with pool_for(handler, max_connections=1, timeout_s=1.0) as (_script, pool):
        response = await pool.send("document", "GET", b"/broken", headers=[], body=None)
        received = bytearray()

        async def drain() -> None:
            async for chunk in stream_body(response):
                received.extend(chunk)

        with pytest.raises(httpx.TransportError):
            await drain()
        assert len(received) == 1000
        # The one place in the pool is free again: this call does not wait for a pool timeout.
        assert await asyncio.wait_for(get(pool), 0.9) == b"ok"


async def test_a_busy_pool_past_the_whole_timeout_is_a_readable_503() -> None:
    async def handler(
        script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await script.read_request(reader)
        # The head and the start of a body, then nothing: the connection stays taken.
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nstart")
        await writer.drain()
        await asyncio.sleep(5)

    async with pool_for(handler, max_connections=1, timeout_s=0.3) as (script, pool):
        held = await pool.send("document", "GET", b"/x", headers=[], body=None)
        # The next call waits for the one connection, then is told to come back.
        with pytest.raises(ServiceUnavailableError) as caught:
            await get(pool)
        assert "unavailable right now" in caught.value.detail
        assert caught.value.headers == {"Retry-After": "5"}
        assert script.connections == 1
        await held.aclose()
