"""``SignatureScanner``: an in-process matcher for ``make dev`` that loads the same signature
files clamd loads, so the embedded and the real scanner refuse the same files.

Supported (a strict subset of ClamAV's formats; anything else is refused at load time, so a
signature is never shipped that one scanner would silently ignore):

* ``.ndb`` body signatures ``Name:TargetType:Offset:HexSignature``, TargetType 0 (any file),
  Offset ``*`` (anywhere) or a decimal byte offset, plain hex (no wildcards);
* ``.hdb`` whole-file hashes ``MD5:Size:Name`` (Size may be ``*``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from kglab_ingestion.scanning.port import ScanResult

#: clamd reports signatures loaded from databases other than its official ones with this suffix;
#: the embedded scanner does too, so a refused file records the same name in either mode.
UNOFFICIAL_SUFFIX = ".UNOFFICIAL"
_READ_CHUNK = 1024 * 1024
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


class SignatureFileError(ValueError):
    """A signature file is malformed or uses a feature this scanner does not implement."""


@dataclass(frozen=True, slots=True)
class BodySignature:
    name: str
    pattern: bytes
    #: Absolute byte offset the pattern must start at; None matches anywhere.
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class SignatureSet:
    body: tuple[BodySignature, ...] = ()
    #: (md5 hex, size or None for any size) -> name
    hashes: dict[tuple[str, int | None], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.body) + len(self.hashes)


def load_signatures(directory: Path) -> SignatureSet:
    """Read every ``.ndb`` and ``.hdb`` file in ``directory``; refuse an empty set."""
    body: list[BodySignature] = []
    hashes: dict[tuple[str, int | None], str] = {}
    if not directory.is_dir():
        raise SignatureFileError(f"The signature directory {directory} does not exist.")
    for path in sorted(directory.iterdir()):
        if path.suffix == ".ndb":
            body.extend(_parse_ndb(path))
        elif path.suffix == ".hdb":
            hashes.update(_parse_hdb(path))
    signatures = SignatureSet(body=tuple(body), hashes=hashes)
    if not len(signatures):
        raise SignatureFileError(f"No signatures (.ndb or .hdb) found in {directory}.")
    return signatures


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="ascii")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_ndb(path: Path) -> list[BodySignature]:
    found = []
    for number, line in _lines(path):
        where = f"{path.name}:{number}"
        parts = line.split(":")
        if len(parts) < 4:
            raise SignatureFileError(f"{where}: expected Name:TargetType:Offset:HexSignature.")
        name, target, offset, hex_pattern = parts[:4]
        if target != "0":
            raise SignatureFileError(f"{where}: only TargetType 0 (any file) is supported.")
        if not _HEX.match(hex_pattern):
            raise SignatureFileError(f"{where}: only plain hex signatures are supported.")
        if offset == "*":
            at = None
        elif offset.isdigit():
            at = int(offset)
        else:
            raise SignatureFileError(f"{where}: only '*' or a decimal offset is supported.")
        found.append(BodySignature(name, bytes.fromhex(hex_pattern), at))
    return found


def _parse_hdb(path: Path) -> dict[tuple[str, int | None], str]:
    found: dict[tuple[str, int | None], str] = {}
    for number, line in _lines(path):
        where = f"{path.name}:{number}"
        parts = line.split(":")
        if len(parts) < 3 or not _MD5.match(parts[0]):
            raise SignatureFileError(f"{where}: expected MD5:Size:Name.")
        size_text = parts[1]
        if size_text != "*" and not size_text.isdigit():
            raise SignatureFileError(f"{where}: the size must be a number or '*'.")
        size = None if size_text == "*" else int(size_text)
        found[(parts[0].lower(), size)] = parts[2]
    return found


class SignatureScanner:
    """A ``VirusScanner`` that matches the project's signatures in-process, chunk by chunk."""

    def __init__(self, signatures: SignatureSet, *, chunk_size: int = _READ_CHUNK) -> None:
        self._signatures = signatures
        self._chunk_size = chunk_size
        longest = max((len(s.pattern) for s in signatures.body), default=1)
        self._overlap = longest - 1

    @classmethod
    def from_directory(cls, directory: Path) -> SignatureScanner:
        return cls(load_signatures(directory))

    async def ping(self) -> None:
        return None

    async def scan_file(self, path: Path) -> ScanResult:
        return await asyncio.to_thread(self._scan, path)

    def _scan(self, path: Path) -> ScanResult:
        md5 = hashlib.md5(usedforsecurity=False)
        tail = b""
        size = 0
        with path.open("rb") as source:
            while chunk := source.read(self._chunk_size):
                md5.update(chunk)
                window = tail + chunk
                window_start = size - len(tail)
                size += len(chunk)
                name = self._match_body(window, window_start)
                if name is not None:
                    return ScanResult(clean=False, signature=name + UNOFFICIAL_SUFFIX)
                tail = window[-self._overlap :] if self._overlap else b""
        digest = md5.hexdigest()
        name = self._signatures.hashes.get((digest, size)) or self._signatures.hashes.get(
            (digest, None)
        )
        if name is not None:
            return ScanResult(clean=False, signature=name + UNOFFICIAL_SUFFIX)
        return ScanResult(clean=True)

    def _match_body(self, window: bytes, window_start: int) -> str | None:
        for signature in self._signatures.body:
            if signature.offset is None:
                if signature.pattern in window:
                    return signature.name
                continue
            start = signature.offset - window_start
            if 0 <= start and start + len(signature.pattern) <= len(window):
                if window[start : start + len(signature.pattern)] == signature.pattern:
                    return signature.name
        return None
