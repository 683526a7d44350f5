"""The gateway's limits as the client sees them: the IETF ``RateLimit`` and ``RateLimit-Policy``
fields (draft-ietf-httpapi-ratelimit-headers) on every answer that a limit counted.

The counting itself is ``kglab_shared.ratelimit`` (adr/0018). :class:`GatewayPolicy` leaves
the fields of a request in its scope; :class:`RateLimitHeadersMiddleware` adds them to the
answer, whichever layer produced it (the proxied service, an error handler, a 429).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kglab_shared.ratelimit import Usage

#: Where a request's fields wait in its ASGI scope until the answer starts.
SCOPE_KEY = "kglab.ratelimit"
POLICY_HEADER = "RateLimit-Policy"
LIMIT_HEADER = "RateLimit"


def rate_limit_fields(named: Sequence[tuple[str, Usage]]) -> list[tuple[bytes, bytes]]:
    """The two fields for a request's limits, each a Structured Field list (RFC 8941):
    ``RateLimit-Policy: "user";q=6000;w=60`` and ``RateLimit: "user";r=5999;t=60``."""
    policies = ", ".join(f'"{name}";q={u.quota.amount};w={u.quota.window_s}' for name, u in named)
    limits = ", ".join(f'"{name}";r={u.remaining};t={u.reset_s}' for name, u in named)
    return [
        (POLICY_HEADER.lower().encode(), policies.encode("ascii")),
        (LIMIT_HEADER.lower().encode(), limits.encode("ascii")),
    ]


def remember(scope: MutableMapping[str, Any], fields: list[tuple[bytes, bytes]]) -> None:
    scope[SCOPE_KEY] = fields


class RateLimitHeadersMiddleware:
    """Pure ASGI: adds the fields a request's limits left in its scope to the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            fields = scope.get(SCOPE_KEY)
            if fields and message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in fields if n not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_fields)
