"""The embedded blob store: files under a directory, named by their SHA-256 (``make dev``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path

from kglab_ingestion.store.port import BlobNotFoundError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_key(sha256: str) -> str:
    """Keys are hex digests and nothing else, so no key can address a path of its choosing."""
    if not _SHA256.match(sha256):
        raise ValueError(f"A blob key must be a SHA-256 hex digest, not {sha256[:80]!r}.")
    return sha256


class FileBlobStore:
    """Two-level fan-out (``ab/cd/abcd...``); writes go to a temporary name, then one rename,
    so a crash never leaves a half-written blob under its final name."""

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        key = check_key(sha256)
        return self._root / key[:2] / key[2:4] / key

    async def put_file(self, sha256: str, path: Path) -> bool:
        return await asyncio.to_thread(self._put, sha256, path)

    def _put(self, sha256: str, source: Path) -> bool:
        target = self._path(sha256)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return True

    async def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    async def copy_to(self, sha256: str, destination: Path) -> None:
        source = self._path(sha256)
        try:
            await asyncio.to_thread(shutil.copyfile, source, destination)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(sha256) from exc

    async def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(sha256).unlink()

    async def ping(self) -> None:
        if not os.access(self._root, os.W_OK):
            raise OSError(f"The blob directory {self._root} is not writable.")

    async def close(self) -> None:
        return None
