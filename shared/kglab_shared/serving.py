"""The HTTP server's edge against slow clients, for every service's uvicorn (issue 13).

uvicorn starts no timer until a response is complete: a client that sends half a request line
or half its headers holds the connection, and a slot of ``--limit-concurrency``, for as long
as it likes (1,500 such connections stayed open for minutes). :class:`GuardedHttpProtocol` is
uvicorn's own httptools protocol with one addition: a request's headers must arrive within
``KGLAB_HTTP_HEADER_TIMEOUT_S`` of its first byte (or of the connection, for the first request),
else the connection is answered 408 and closed. Optionally it also bounds the connections one
client address may hold (``KGLAB_HTTP_MAX_CONNECTIONS_PER_CLIENT``, off by default: behind a
proxy every client shares the proxy's address).

Bodies are the application's to time: the gateway reads each one under a deadline
(``kglab_gateway.main``, 408). The image's command picks this protocol with ``--http`` and
bounds the connections in all with ``--limit-concurrency`` (README, "Slow clients").
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 42\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"The request headers did not arrive in time"
)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers."""

    header_timeout_s: ClassVar[float] = _env_float("KGLAB_HTTP_HEADER_TIMEOUT_S", 10.0)
    max_connections_per_client: ClassVar[int] = int(
        _env_float("KGLAB_HTTP_MAX_CONNECTIONS_PER_CLIENT", 0)
    )
    _open_per_client: ClassVar[Counter[str]] = Counter()

    _header_deadline: asyncio.TimerHandle | None = None
    _counted_as: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.max_connections_per_client
        host = self.client[0] if self.client else None
        if limit > 0 and host is not None:
            if self._open_per_client[host] >= limit:
                transport.close()
                return
            self._open_per_client[host] += 1
            self._counted_as = host
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        if self._counted_as is not None:
            self._open_per_client[self._counted_as] -= 1
            if self._open_per_client[self._counted_as] <= 0:
                del self._open_per_client[self._counted_as]
            self._counted_as = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        # A further request on a kept-alive connection: its headers get the same deadline.
        self._arm_header_deadline()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None and self.header_timeout_s > 0:
            self._header_deadline = self.loop.call_later(
                self.header_timeout_s, self._headers_too_slow
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_ANSWER)
            self.transport.close()
