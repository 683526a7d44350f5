"""File outbox for ``make dev``: every mail becomes one readable ``.eml`` file."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from kglab_auth.domain import OutgoingMail

_UNSAFE = re.compile(r"[^a-z0-9@._-]+")


class FileOutboxMailer:
    def __init__(self, directory: Path, *, sender: str) -> None:
        self.directory = directory
        self._sender = sender

    async def send(self, mail: OutgoingMail) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message.set_content(mail.body)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{_UNSAFE.sub('_', mail.to.lower())}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(self._write, self.directory / name, message.as_bytes())

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        os.replace(partial, path)  # readers never see half a mail
