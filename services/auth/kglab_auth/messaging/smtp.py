"""SMTP adapter (aiosmtplib), configured by ``KGLAB_SMTP_URL`` (smtp:// or smtps://)."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from kglab_auth.domain import OutgoingMail


class SmtpMailer:
    def __init__(self, url: str, *, sender: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("KGLAB_SMTP_URL must look like smtp://[user:password@]host[:port].")
        self._host = parts.hostname
        self._tls = parts.scheme == "smtps"
        self._port = parts.port or (465 if self._tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._timeout = timeout_s

    def __repr__(self) -> str:
        return f"SmtpMailer(host={self._host!r}, port={self._port})"

    async def send(self, mail: OutgoingMail) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        await aiosmtplib.send(
            message,
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._tls,
            start_tls=False if not self._tls else None,
            timeout=self._timeout,
        )
