"""Read a multipart upload straight to a temporary file, hashing and counting as it streams.

The request body is never held in memory, and reading stops as soon as the file passes the
size limit: a 2 GB upload costs the service 10 MB of disk and one 413.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from kglab_ingestion.domain import HEAD_BYTES, FileTooLargeError, MissingFileError, ReceivedFile
from kglab_shared.errors import UnprocessableError, UnsupportedMediaTypeError

FILE_FIELD = "file"
#: Multipart framing and small form fields allowed beyond the file's own limit.
_FRAMING_ALLOWANCE = 64 * 1024


@dataclass(slots=True)
class _PartState:
    headers: dict[str, bytes] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    is_file: bool = False
    file_name: str | None = None


async def receive_upload(
    stream: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: int | None,
    limit: int,
    spool_dir: Path,
) -> ReceivedFile:
    """Parse ``multipart/form-data`` from ``stream``; keep the part named ``file`` on disk."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaTypeError(
            "Send the file as multipart/form-data in a field named 'file'."
        )
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UnprocessableError("The multipart body has no boundary in its Content-Type.")
    if content_length is not None and content_length > limit + _FRAMING_ALLOWANCE:
        raise FileTooLargeError(content_length, limit)

    spool_dir.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=spool_dir)
    target = os.fdopen(descriptor, "wb")
    path = Path(name)
    digest = hashlib.sha256()
    head = bytearray()
    state = {"size": 0, "found": False, "done": False, "consumed": 0, "file_start": 0}
    part = _PartState()
    file_name: list[str | None] = [None]

    def on_part_begin() -> None:
        nonlocal part
        part = _PartState()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part.header_value.extend(data[start:end])

    def on_header_end() -> None:
        part.headers[part.header_field.decode("latin-1").lower()] = bytes(part.header_value)
        part.header_field.clear()
        part.header_value.clear()

    def on_headers_finished() -> None:
        disposition = part.headers.get("content-disposition", b"")
        _, params = parse_options_header(disposition)
        field_name = params.get(b"name", b"").decode("utf-8", "replace")
        if field_name == FILE_FIELD and not state["found"]:
            part.is_file = True
            state["found"] = True
            raw_name = params.get(b"filename")
            part.file_name = raw_name.decode("utf-8", "replace") if raw_name else None
            file_name[0] = part.file_name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not part.is_file:
            return
        block = data[start:end]
        state["size"] += len(block)
        if state["size"] > limit:
            raise _TooLarge()
        if len(head) < HEAD_BYTES:
            head.extend(block[: HEAD_BYTES - len(head)])
        digest.update(block)
        target.write(block)

    def on_part_end() -> None:
        if part.is_file:
            state["done"] = True

    callbacks: dict[str, Any] = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, cast(Any, callbacks), max_header_size=_MAX_PART_HEADER_BYTES)
    try:
        try:
            async for chunk in stream:
                if not state["found"]:
                    state["file_start"] = state["consumed"]
                state["consumed"] += len(chunk)
                parser.write(chunk)
            parser.finalize()
        except _TooLarge:
            raise FileTooLargeError(
                _estimated_size(content_length, state["file_start"], limit),
                limit,
                at_least=content_length is None,
            ) from None
        except MultipartParseError as exc:
            if "header size" in str(exc).lower():
                # The only long header a client sends in a part is Content-Disposition, and
                # what makes it long is the file name.
                raise UnprocessableError(
                    "The file name is too long: a part's headers may hold at most "
                    f"{_MAX_PART_HEADER_BYTES:,} bytes. Rename the file to a shorter name "
                    "(under 255 characters) and send it again."
                ) from exc
            raise UnprocessableError(
                "The multipart body is malformed; send the file in a field named 'file'."
            ) from exc
        except ClientDisconnect as exc:
            raise UnprocessableError("The upload was interrupted before the file arrived.") from exc
        finally:
            target.close()
        if not state["found"] or not state["done"]:
            raise MissingFileError()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return ReceivedFile(
        path=path,
        file_name=file_name[0],
        size=int(state["size"]),
        sha256=digest.hexdigest(),
        head=bytes(head),
    )


#: python-multipart's own bound on one header line of a part, named so the message can say it.
_MAX_PART_HEADER_BYTES = 4096 + 128


class _TooLarge(Exception):
    pass


def _estimated_size(content_length: int | None, file_start: int, limit: int) -> int:
    """The file's size from the declared body length, less the framing before the file."""
    if content_length is None:
        return limit + 1
    return max(limit + 1, content_length - file_start - 256)
