"""Real local servers the auth tests talk to: a fresh PostgreSQL database, an SMTP sink, uvicorn.

Every helper is bounded in time and binds to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any

import asyncpg
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def fresh_postgres_database(server_url: str) -> AsyncIterator[str]:
    """Create a uniquely named database, yield its URL, drop it (even if sessions linger)."""
    name = f"kglab_auth_test_{uuid.uuid4().hex[:12]}"
    url = make_url(server_url)
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


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
