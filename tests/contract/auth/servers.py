"""Real local servers the auth tests talk to: a fresh PostgreSQL database, an SMTP sink, uvicorn.

Every helper is bounded in time and binds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller

from tests.isolation import LOOPBACK, free_port, fresh_postgres_database

__all__ = ["LOOPBACK", "free_port", "fresh_postgres_database"]


class SmtpSink:
    """aiosmtpd handler that keeps every received message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._messages.append(message_from_bytes(envelope.original_content))
        return "250 Message accepted for delivery"

    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpSink, str]]:
    """A real SMTP server on a free loopback port; yields (sink, smtp:// URL)."""
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname=LOOPBACK, port=port, ready_timeout=10)
    controller.start()
    try:
        yield sink, f"smtp://{LOOPBACK}:{port}"
    finally:
        controller.stop()


@asynccontextmanager
async def serve_app(app: Any, *, startup_timeout_s: float = 10.0) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port in this event loop."""
    port = free_port()
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("The local test server did not start in time.")
        await asyncio.sleep(0.01)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
