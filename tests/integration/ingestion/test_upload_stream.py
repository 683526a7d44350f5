"""The streaming multipart reader on its own: whatever way the bytes arrive, the file on disk and
its hash are exact, and a refused or interrupted upload leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.requests import ClientDisconnect

from kglab_ingestion.api.upload_stream import receive_upload
from kglab_ingestion.domain import FileTooLargeError
from kglab_shared.errors import UnprocessableError

BOUNDARY = "----kglab"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(content: bytes, name: str = "a.md") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/markdown\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
async def test_the_file_and_its_hash_are_exact_however_the_body_is_cut(
    tmp_path: Path, piece: int
) -> None:
    content = os.urandom(20_000) + b"\r\n--not-the-boundary\r\n" + os.urandom(100)
    body = multipart(content)
    received = await receive_upload(
        pieces(body, piece),
        content_type=CONTENT_TYPE,
        content_length=len(body),
        limit=1 << 20,
        spool_dir=tmp_path,
    )
    assert received.path.read_bytes() == content
    assert received.sha256 == hashlib.sha256(content).hexdigest()
    assert received.size == len(content)
    assert received.file_name == "a.md"
    assert received.head == content[: len(received.head)]
    received.discard()
    assert list(tmp_path.iterdir()) == []


async def test_an_interrupted_upload_leaves_nothing(tmp_path: Path) -> None:
    async def cut_off() -> AsyncIterator[bytes]:
        yield multipart(b"x" * 1000)[:500]
        raise ClientDisconnect()

    with pytest.raises(UnprocessableError, match="interrupted"):
        await receive_upload(
            cut_off(),
            content_type=CONTENT_TYPE,
            content_length=None,
            limit=1 << 20,
            spool_dir=tmp_path,
        )
    assert list(tmp_path.iterdir()) == []


async def test_reading_stops_at_the_limit_and_leaves_nothing(tmp_path: Path) -> None:
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        head = multipart(b"")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
        yield head
        while True:
            consumed += 65536
            yield b"z" * 65536

    with pytest.raises(FileTooLargeError, match="more than"):
        await receive_upload(
            endless(),
            content_type=CONTENT_TYPE,
            content_length=None,
            limit=200_000,
            spool_dir=tmp_path,
        )
    assert consumed < 400_000
    assert list(tmp_path.iterdir()) == []


async def test_an_8000_character_file_name_is_refused_for_its_name(tmp_path: Path) -> None:
    body = multipart(b"# notes\n", name="n" * 8000 + ".md")
    with pytest.raises(UnprocessableError, match="file name is too long") as refused:
        await receive_upload(
            pieces(body, 4096),
            content_type=CONTENT_TYPE,
            content_length=len(body),
            limit=1 << 20,
            spool_dir=tmp_path,
        )
    assert "malformed" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []
