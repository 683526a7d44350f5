"""The ``VirusScanner`` port: scan one file, say whether it is clean and which signature hit.

A scanner that cannot answer raises :class:`ScannerUnavailableError` (503): an unscanned file is
never let through silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kglab_shared.errors import PayloadTooLargeError, ServiceUnavailableError


@dataclass(frozen=True, slots=True)
class ScanResult:
    clean: bool
    #: The name of the signature that matched (clamd's spelling), None when clean.
    signature: str | None = None


class ScannerUnavailableError(ServiceUnavailableError):
    """The scanner is down, timed out or answered an error; try again later."""

    code = "scanner_unavailable"


class FileTooLargeToScanError(PayloadTooLargeError):
    """The scanner refused the file for its size, so it cannot be called clean."""

    code = "too_large_to_scan"


class VirusScanner(Protocol):
    async def scan_file(self, path: Path) -> ScanResult:
        """Scan the file at ``path`` (streamed, never read whole into memory)."""

    async def ping(self) -> None:
        """Return when the scanner answers; raise :class:`ScannerUnavailableError` otherwise."""
