"""Virus scanning behind a small port: clamd (INSTREAM) in compose and CI, an embedded matcher
that loads the same project signature file under ``make dev``."""

from kglab_ingestion.scanning.clamd import ClamdScanner
from kglab_ingestion.scanning.embedded import SignatureScanner, load_signatures
from kglab_ingestion.scanning.port import (
    FileTooLargeToScanError,
    ScannerUnavailableError,
    ScanResult,
    VirusScanner,
)
from kglab_ingestion.scanning.settings import (
    PROJECT_SIGNATURE_DIR,
    ScannerKind,
    ScannerSettings,
    create_scanner,
)

__all__ = [
    "PROJECT_SIGNATURE_DIR",
    "ClamdScanner",
    "FileTooLargeToScanError",
    "ScanResult",
    "ScannerKind",
    "ScannerSettings",
    "ScannerUnavailableError",
    "SignatureScanner",
    "VirusScanner",
    "create_scanner",
    "load_signatures",
]
