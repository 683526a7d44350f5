"""A request body that stalls is answered 408, not waited for (pure ASGI, no body copy).

Each piece of a request body must arrive within ``body_read_timeout_s`` of the previous one (or
of the request, for the first): a slow but moving upload of 60 MB passes, a client that sends
half its body and stops is cut off (issue 13: 1,500 short bodies stayed open for minutes).
Whatever the route does with the failed read (a proxied upload turns it into an upstream
error), the client gets the 408 when no answer has started yet; a started answer is cut.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kglab_shared.errors import problem


class BodyReadTimeoutError(Exception):
    """The client did not send the next piece of its body in time."""


class BodyDeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"timed_out": False, "started": False, "body_done": False}

        async def receive_in_time() -> Message:
            if state["body_done"]:
                # After the body only a disconnect can come; waiting for it is not reading.
                return await receive()
            try:
                # asyncio.timeout, not wait_for: no extra task per read on the hot path.
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                state["timed_out"] = True
                raise BodyReadTimeoutError() from None
            if message["type"] == "http.request" and not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def send_unless_timed_out(message: Message) -> None:
            if state["timed_out"]:
                return  # the 408 below is the answer
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_unless_timed_out)
        except BodyReadTimeoutError:
            pass
        except Exception:
            if not state["timed_out"]:
                raise
        if state["timed_out"] and not state["started"]:
            response = problem(
                408,
                f"The request body stopped arriving: nothing came for {self.timeout_s:g} s. "
                "Send it again.",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
