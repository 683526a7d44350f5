"""Resumable (tus) upload state: the ``UploadStore`` port and its file-backed adapter.

An upload is two files in one directory: ``<id>.json`` (owner, declared length, file name,
expiry, and once finished the job it became) and ``<id>.part`` (the bytes received so far). The
offset is the size of ``<id>.part``, so it can never disagree with the data, even after a crash
mid-write. Writers take an exclusive ``flock`` on ``<id>.lock``, which also holds across worker
processes sharing the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_WRITE_BATCH = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    owner_id: str
    length: int
    offset: int
    filename: str
    #: The client's Upload-Metadata header as sent (echoed on HEAD).
    raw_metadata: str
    created_at: datetime
    expires_at: datetime
    #: What the finished upload became (the completion callback's answer), None until then.
    result: dict[str, Any] | None = field(default=None)

    @property
    def received_all(self) -> bool:
        return self.offset == self.length

    @property
    def finished(self) -> bool:
        return self.result is not None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class UploadBusyError(Exception):
    """Another request is writing to (or finishing) this upload right now."""


class OffsetMismatchError(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"the upload is at offset {current}")
        self.current = current


class UploadOverflowError(Exception):
    """The request carried more bytes than the upload has left; nothing of it was kept."""


class UploadStore(Protocol):
    async def create(
        self,
        *,
        owner_id: str,
        length: int,
        filename: str,
        raw_metadata: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> Upload:
        """Start an upload with no bytes."""

    async def get(self, upload_id: str) -> Upload | None:
        """The upload whoever owns it (the caller checks ownership), None when unknown."""

    def exclusive(self, upload_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the upload for one writer; raise :class:`UploadBusyError` when another has it."""

    async def append(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], *, expires_at: datetime
    ) -> Upload:
        """Append at ``offset`` (inside :meth:`exclusive`).

        Raises :class:`OffsetMismatchError` when the upload is elsewhere and
        :class:`UploadOverflowError` (keeping nothing of this request) when the bytes run past
        the declared length. Bytes received before a client disconnects are kept.
        """

    def data_path(self, upload_id: str) -> Path:
        """Where the received bytes are (valid until :meth:`finish` or :meth:`delete`)."""

    async def finish(self, upload_id: str, result: dict[str, Any]) -> Upload:
        """Record what the upload became and drop its bytes (they were handed over)."""

    async def delete(self, upload_id: str) -> bool:
        """Remove the upload and its bytes; False when it did not exist."""

    async def expired(self, now: datetime) -> list[Upload]:
        """Uploads whose expiry has passed."""

    async def count_unfinished(self, owner_id: str, now: datetime) -> int:
        """The owner's live uploads that have not become a job yet."""


class FileUploadStore:
    """``UploadStore`` in a local directory (a volume the service owns)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)

    def _path(self, upload_id: str, suffix: str) -> Path:
        if not UPLOAD_ID.match(upload_id):
            raise ValueError("not an upload id")
        return self._dir / f"{upload_id}{suffix}"

    def data_path(self, upload_id: str) -> Path:
        return self._path(upload_id, ".part")

    async def create(
        self,
        *,
        owner_id: str,
        length: int,
        filename: str,
        raw_metadata: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> Upload:
        upload = Upload(
            id=secrets.token_hex(16),
            owner_id=owner_id,
            length=length,
            offset=0,
            filename=filename,
            raw_metadata=raw_metadata,
            created_at=created_at,
            expires_at=expires_at,
        )
        await asyncio.to_thread(self._create_files, upload)
        return upload

    def _create_files(self, upload: Upload) -> None:
        self.data_path(upload.id).touch(exist_ok=False)
        self._write_meta(upload)

    async def get(self, upload_id: str) -> Upload | None:
        if not UPLOAD_ID.match(upload_id):
            return None
        return await asyncio.to_thread(self._read, upload_id)

    def _read(self, upload_id: str) -> Upload | None:
        try:
            raw = json.loads(self._path(upload_id, ".json").read_text("utf-8"))
        except FileNotFoundError:
            return None
        try:
            offset = self.data_path(upload_id).stat().st_size
        except FileNotFoundError:
            # Finished uploads keep no bytes; a half-deleted one reads as gone.
            if raw.get("result") is None:
                return None
            offset = int(raw["length"])
        return Upload(
            id=upload_id,
            owner_id=raw["owner_id"],
            length=int(raw["length"]),
            offset=offset,
            filename=raw["filename"],
            raw_metadata=raw["raw_metadata"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            expires_at=datetime.fromisoformat(raw["expires_at"]),
            result=raw.get("result"),
        )

    def _write_meta(self, upload: Upload) -> None:
        meta = {
            "owner_id": upload.owner_id,
            "length": upload.length,
            "filename": upload.filename,
            "raw_metadata": upload.raw_metadata,
            "created_at": upload.created_at.isoformat(),
            "expires_at": upload.expires_at.isoformat(),
            "result": upload.result,
        }
        target = self._path(upload.id, ".json")
        scratch = target.with_suffix(".json.tmp")
        scratch.write_text(json.dumps(meta), "utf-8")
        os.replace(scratch, target)

    @asynccontextmanager
    async def _locked(self, upload_id: str) -> AsyncIterator[None]:
        fd = os.open(self._path(upload_id, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise UploadBusyError(upload_id) from None
                raise
            yield
        finally:
            os.close(fd)  # releases the lock

    def exclusive(self, upload_id: str) -> AbstractAsyncContextManager[None]:
        return self._locked(upload_id)

    async def append(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], *, expires_at: datetime
    ) -> Upload:
        upload = await self.get(upload_id)
        if upload is None:
            raise FileNotFoundError(upload_id)
        if upload.offset != offset or upload.finished:
            raise OffsetMismatchError(upload.offset)
        room = upload.length - offset
        received = 0
        path = self.data_path(upload_id)
        overflow = False
        with path.open("r+b") as out:
            out.seek(offset)
            buffer = bytearray()
            try:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > room:
                        overflow = True
                        break
                    buffer += chunk
                    if len(buffer) >= _WRITE_BATCH:
                        await asyncio.to_thread(out.write, bytes(buffer))
                        buffer.clear()
            finally:
                if overflow:
                    await asyncio.to_thread(out.truncate, offset)
                elif buffer:
                    # Also when the client went away: what arrived is kept, to resume from.
                    await asyncio.to_thread(out.write, bytes(buffer))
        if overflow:
            raise UploadOverflowError(upload_id)
        updated = replace(upload, offset=offset + received, expires_at=expires_at)
        await asyncio.to_thread(self._write_meta, updated)
        return updated

    async def finish(self, upload_id: str, result: dict[str, Any]) -> Upload:
        upload = await self.get(upload_id)
        if upload is None:
            raise FileNotFoundError(upload_id)
        finished = replace(upload, result=result, offset=upload.length)
        await asyncio.to_thread(self._write_meta, finished)
        self.data_path(upload_id).unlink(missing_ok=True)
        return finished

    async def delete(self, upload_id: str) -> bool:
        if not UPLOAD_ID.match(upload_id):
            return False
        existed = self._path(upload_id, ".json").exists()
        for suffix in (".json", ".part", ".json.tmp", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                self._path(upload_id, suffix).unlink()
        return existed

    async def expired(self, now: datetime) -> list[Upload]:
        return [u for u in await self._all() if u.expired(now)]

    async def count_unfinished(self, owner_id: str, now: datetime) -> int:
        return sum(
            1
            for u in await self._all()
            if u.owner_id == owner_id and not u.finished and not u.expired(now)
        )

    async def _all(self) -> list[Upload]:
        def scan() -> list[Upload]:
            found = []
            for path in self._dir.glob("*.json"):
                with contextlib.suppress(ValueError, KeyError, json.JSONDecodeError):
                    upload = self._read(path.stem)
                    if upload is not None:
                        found.append(upload)
            return found

        return await asyncio.to_thread(scan)
