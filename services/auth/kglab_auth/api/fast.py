"""GET /api/v1/auth/me without FastAPI's routing layer: every signed-in page asks for it.

Measured under load, FastAPI's router, exception middleware, dependency solving and response
validation cost more CPU per /me than the work itself (verify the forwarded identity, read the
user row, write its JSON). :class:`MeFastPath` is a pure ASGI layer, installed innermost (inside
the shared request context: correlation id, metrics, tracing) that answers exactly that call.
It runs the same checks as the route (the shared ``current_identity`` dependency, then
``AuthService.me``, which reads the row fresh from the store), and a failure goes through the
app's own exception handlers, so a problem+json reads exactly as from the route. The FastAPI
route stays: it documents /me in the OpenAPI document, and it is what a HEAD or any other
method on the path reaches (405, as before).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kglab_auth.schemas import UserOut
from kglab_auth.service import AuthService
from kglab_shared.fastpath import exception_handler_for, find_routes
from kglab_shared.identity import current_identity

ME_PATH = "/api/v1/auth/me"


class MeFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ME_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        if self._route is None:
            self._route = next(iter(find_routes(app.router.routes, _is_me_route)), None)
        # Named in the scope, so the request metrics keep their route label.
        scope["route"] = self._route
        request = Request(scope, receive)
        try:
            identity = await current_identity(request)
            service: AuthService = app.state.auth_service
            user = await service.me(identity)
            body = UserOut.of(user).model_dump_json().encode()
            response = Response(body, media_type="application/json")
        except Exception as exc:
            handler = exception_handler_for(app.exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _is_me_route(route: Any) -> bool:
    return getattr(route, "path", None) == ME_PATH and "GET" in (
        getattr(route, "methods", None) or ()
    )
