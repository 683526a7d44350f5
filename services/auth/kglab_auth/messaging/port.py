"""The mail port: password-reset links leave the service through here."""

from __future__ import annotations

from typing import Protocol

from kglab_auth.domain import OutgoingMail


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail) -> None:
        """Hand the mail over for delivery, or raise."""
