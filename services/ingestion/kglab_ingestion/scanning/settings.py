"""Scanner settings (embedded in the ingestion service's settings) and the one factory."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kglab_ingestion.scanning.clamd import ClamdScanner
from kglab_ingestion.scanning.embedded import SignatureScanner
from kglab_ingestion.scanning.port import VirusScanner

#: The signatures the project ships (the EICAR test string); clamd loads the same directory.
PROJECT_SIGNATURE_DIR = Path(__file__).resolve().parent / "signatures"


class ScannerKind(StrEnum):
    CLAMD = "clamd"
    EMBEDDED = "embedded"


class ScannerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ScannerKind = ScannerKind.EMBEDDED
    #: ``tcp://host:port`` of clamd (``KGLAB_CLAMD_URL``); required when ``kind`` is clamd.
    clamd_url: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    signature_dir: Path = PROJECT_SIGNATURE_DIR

    @model_validator(mode="after")
    def _check_clamd_url(self) -> Self:
        if self.clamd_url is not None:
            parse_clamd_url(self.clamd_url)
        elif self.kind is ScannerKind.CLAMD:
            raise ValueError("the clamd scanner needs KGLAB_CLAMD_URL (tcp://host:port).")
        return self


def parse_clamd_url(url: str) -> tuple[str, int]:
    """``tcp://host:port`` -> (host, port); a readable ValueError otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise ValueError(f"'{url}' is not a clamd address of the form tcp://host:port.")
    return parts.hostname, port


def create_scanner(settings: ScannerSettings) -> VirusScanner:
    """The configured scanner; nothing connects here (clamd is dialled per scan)."""
    if settings.kind is ScannerKind.CLAMD:
        assert settings.clamd_url is not None  # checked by the validator
        host, port = parse_clamd_url(settings.clamd_url)
        return ClamdScanner(host, port, timeout=settings.timeout_s)
    return SignatureScanner.from_directory(settings.signature_dir)
