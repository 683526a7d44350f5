"""An httpx transport whose connections go only to addresses checked at connect time.

The host name is resolved once per connection, every resolved address is checked against the
deny-list, and the socket is opened to one of those very addresses (TLS still verifies the
certificate against the host name). A name that resolves to a public address for a pre-check and
to an internal one for the connection (DNS rebinding) therefore has no second lookup to exploit.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from kglab_ingestion.fetching.addresses import IPNetwork, check_resolved_address
from kglab_ingestion.fetching.errors import FetchError

#: (host, port) -> the addresses to connect to, in preference order.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_checked(
    resolver: Resolver,
    host: str,
    port: int,
    *,
    allow_private: bool,
    allowlist: tuple[IPNetwork, ...] = (),
    timeout_s: float,
) -> list[str]:
    """Resolve ``host`` and refuse it unless every address is allowed."""
    try:
        async with asyncio.timeout(timeout_s):
            addresses = await resolver(host, port)
    except TimeoutError:
        raise FetchError(f"The name {host} did not resolve in time.", retryable=True) from None
    except socket.gaierror as exc:
        retryable = exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", -11))
        raise FetchError(
            f"The name {host} does not resolve to an address.", retryable=retryable
        ) from None
    if not addresses:
        raise FetchError(f"The name {host} does not resolve to an address.", retryable=False)
    for address in addresses:
        check_resolved_address(host, address, allow_private=allow_private, allowlist=allowlist)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        resolver: Resolver,
        *,
        allow_private: bool,
        allowlist: tuple[IPNetwork, ...] = (),
        resolve_timeout_s: float,
    ) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._allowlist = allowlist
        self._resolve_timeout = resolve_timeout_s
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(
            self._resolver,
            host,
            port,
            allow_private=self._allow_private,
            allowlist=self._allowlist,
            timeout_s=self._resolve_timeout,
        )
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise FetchError("Unix sockets are never fetched.", retryable=False)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` over :class:`GuardedNetworkBackend`; no proxies, HTTP/1.1."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        allow_private: bool,
        allowlist: tuple[IPNetwork, ...] = (),
        resolve_timeout_s: float,
        max_connections: int = 50,
    ) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool with the default network backend and offers no argument for
        # another one: replace the pool with one over the guarded backend (same settings).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections // 5 or 1,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(
                resolver,
                allow_private=allow_private,
                allowlist=allowlist,
                resolve_timeout_s=resolve_timeout_s,
            ),
        )
