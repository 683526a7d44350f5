"""A small HTTP/1.1 client for the gateway's calls to services on the network.

Why it exists: under load, aiohttp's client was about a third of the gateway's CPU per proxied
call (a cProfile of the 1,000 requests/s benchmark: about 120 Python calls per request for
sessions, tracing hooks, cookie jars, redirects and stream readers the gateway never uses).
Here a request is one write of bytes built with one join, and the answer is parsed by httptools
(llhttp in C, the parser uvicorn uses on the other side) straight into a list of chunks.

What it covers: requests whose body is in memory or absent; answers read whole or streamed with
back-pressure (reading pauses above ``_HIGH_WATER`` bytes buffered). HEAD requests and streamed
uploads stay on aiohttp (see ``kglab_gateway.proxy``): llhttp cannot be told that a HEAD answer
has no body, and an upload may be answered (413) while it is still being sent.

Connections are kept alive, at most ``max_connections`` per service; callers beyond that wait
for one, within the pool timeout. An idle connection is dropped after ``idle_s`` (below
uvicorn's 5 s keep-alive), so the gateway does not write to a connection the service is closing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools

#: Answer bytes buffered before reading from the service pauses (a slow caller of a large
#: download must not make the gateway hold the whole file).
_HIGH_WATER = 1024 * 1024


class UpstreamError(Exception):
    """The call failed in transport; the message names what happened, never the service's
    address (it is logged, not shown)."""


class UpstreamConnectError(UpstreamError):
    """No connection could be made: the request never reached the service."""


class UpstreamConnectTimeoutError(UpstreamConnectError):
    """Connecting, or waiting for a pooled connection, took longer than the connect timeout."""


class UpstreamClosedError(UpstreamError):
    """The connection closed or broke before the answer was complete."""


class UpstreamProtocolError(UpstreamError):
    """The service's answer was not valid HTTP/1.1."""


class UpstreamReadTimeoutError(UpstreamError):
    """The service took the request but sent nothing for longer than the read timeout."""


class UnsendableRequestError(UpstreamError):
    """A header of the request cannot be written on the wire as it is."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, pool: UpstreamHttpPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        #: Between sending a request and being released; bytes arriving outside it are not
        #: an answer to anything, and the connection is dropped.
        self.busy = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.delimited = False
        self.error: UpstreamError | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"The service's answer is not valid HTTP: {exc}."))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.complete and not self.delimited:
            # An answer with neither a length nor chunks ends when the connection does.
            self.complete = True
            self._wake()
        elif not self.complete:
            self._fail(UpstreamClosedError("The service closed the connection before answering."))
        self._pool.forget(self)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.complete:
            # A second answer to one request: nothing on this connection can be trusted.
            self.keep_alive = False
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # An interim answer (100 Continue): the real one follows on the same connection.
            self.headers = []
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.delimited = any(
            name in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        ) or status in (204, 304)
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True
            self._wake()

    # --- used by the pool and the response -------------------------------------------------

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        """Until the connection has news (head, body, end or failure), at most ``timeout_s``."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(timeout_s, self._timed_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if waiter is self._waiter and not waiter.done():
            self._fail(UpstreamReadTimeoutError("The service did not answer in time."))
            self.close()

    def take(self) -> bytes:
        """The body bytes buffered so far (reading resumes if it was paused)."""
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return data

    def send(self, data: bytes) -> None:
        self._reset()
        self.busy = True
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamHttpResponse:
    """An answer whose head has arrived; read or stream the body, then ``aclose``."""

    __slots__ = ("_conn", "_pool", "_released", "headers", "status_code")

    def __init__(self, pool: UpstreamHttpPool, conn: _Connection) -> None:
        self._pool = pool
        self._conn = conn
        self._released = False
        self.status_code = conn.status
        self.headers = conn.headers

    async def read(self) -> bytes:
        conn = self._conn
        parts = []
        while True:
            if conn.chunks:
                parts.append(conn.take())
            if conn.complete:
                break
            if conn.error is not None:
                raise conn.error
            await conn.wait(self._pool.read_timeout_s)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                if conn.chunks:
                    yield conn.take()
                    continue
                if conn.complete:
                    return
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self._pool.read_timeout_s)
        finally:
            # However the stream ends (done, failed, or abandoned by its reader), the
            # connection goes back or is dropped now: a caller that never reaches aclose()
            # (a streaming response whose body raised) must not keep its place in the pool.
            await self.aclose()

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._conn)


class UpstreamHttpPool:
    """Keep-alive connections to one service (``host:port``, plain HTTP)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        host_header: str,
        path_prefix: str = "",
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        pool_timeout_s: float | None = None,
        idle_s: float = 4.0,
    ) -> None:
        self.host = host
        self.port = port
        self.path_prefix = path_prefix
        self.read_timeout_s = read_timeout_s
        self._host_line = f"host: {host_header}\r\n"
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        #: How long a caller may wait for a busy pool (default: the connect timeout).
        self._pool_timeout_s = connect_timeout_s if pool_timeout_s is None else pool_timeout_s
        self._idle_s = idle_s
        self._idle: list[_Connection] = []
        #: Connections open or being opened, and grants to open one handed to a waiter.
        self._count = 0
        #: Callers waiting for a connection: each gets one, or None (a grant to open one).
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False
        self.loop = asyncio.get_running_loop()

    @property
    def open_connections(self) -> int:
        return self._count

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> UpstreamHttpResponse:
        """Send the request and return once the answer's head has arrived."""
        lines = [f"{method} {self.path_prefix}{target} HTTP/1.1\r\n", self._host_line]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body) if body else 0}\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        # Names and values come from a parsed request or from the gateway itself; a line break
        # in any of them would split the request, so it is refused rather than sent.
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise UnsendableRequestError("A header of the request holds a line break.")
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise UnsendableRequestError("A header of the request is not Latin-1 text.") from exc
        if body:
            data += body
        conn = await self._acquire()
        try:
            conn.send(data)
            while not conn.head_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self.read_timeout_s)
        except BaseException:
            # Whatever happened (a failure, or the caller cancelled), this connection is in
            # the middle of an exchange and cannot be reused.
            conn.close()
            self._discard(conn)
            raise
        return UpstreamHttpResponse(self, conn)

    # --- the pool --------------------------------------------------------------------------

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise UpstreamConnectError("The gateway is shutting down.")
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self._idle_s:
                return conn
            conn.close()
            self._count -= 1
        if self._count < self._max:
            self._count += 1
            return await self._open()
        waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        timer = self.loop.call_later(self._pool_timeout_s, _expire, waiter)
        try:
            granted = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or a grant) just as this caller gave up: pass it on.
                got = waiter.result()
                if got is not None:
                    self.release(got)
                else:
                    self._count -= 1
                    self._grant()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()
        if granted is not None:
            return granted
        return await self._open()

    async def _open(self) -> _Connection:
        """Open a connection; the caller has already counted it."""
        try:
            transport, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Connection(self), self.host, self.port),
                self._connect_timeout_s,
            )
        except TimeoutError as exc:
            self._count -= 1
            self._grant()
            raise UpstreamConnectTimeoutError("Connecting to the service timed out.") from exc
        except OSError as exc:
            self._count -= 1
            self._grant()
            raise UpstreamConnectError(f"Could not connect to the service: {exc}.") from exc
        except BaseException:
            self._count -= 1
            self._grant()
            raise
        # uvloop may call connection_made only on the loop's next turn.
        conn.transport = transport
        return conn

    def release(self, conn: _Connection) -> None:
        """Return a connection after its exchange: reused if the answer was read to its end
        and both sides keep the connection alive, else closed."""
        conn.busy = False
        if conn.closed or not conn.complete or not conn.keep_alive or self._closed:
            conn.close()
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        """A connection closed by the service while idle leaves the pool."""
        if conn in self._idle:
            self._idle.remove(conn)
            self._count -= 1
            self._grant()

    def _discard(self, conn: _Connection) -> None:
        """A connection that was in use will not come back: its place goes to a waiter."""
        self._count -= 1
        self._grant()

    def _grant(self) -> None:
        """Let the first live waiter open a connection in a freed place."""
        while self._waiters and self._count < self._max:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamConnectError("The gateway is shutting down."))


def _expire(waiter: asyncio.Future[_Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(
            UpstreamConnectTimeoutError("Every connection to the service stayed busy.")
        )
