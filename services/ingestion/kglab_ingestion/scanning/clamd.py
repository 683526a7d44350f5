"""``ClamdScanner``: clamd's INSTREAM protocol spoken directly over an asyncio stream.

The protocol (clamd(8)): send ``zINSTREAM\\0``, then the file as chunks, each prefixed with its
length as a 4-byte big-endian unsigned integer, then a zero-length chunk. clamd answers one
NUL-terminated line: ``stream: OK``, ``stream: <Signature> FOUND``, ``INSTREAM size limit
exceeded. ERROR`` (past its StreamMaxLength) or ``<reason> ERROR``.
"""

from __future__ import annotations

import asyncio
import struct
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from kglab_ingestion.scanning.port import (
    FileTooLargeToScanError,
    ScannerUnavailableError,
    ScanResult,
)
from kglab_shared.logging import get_logger

_log = get_logger(__name__)

_CHUNK = 256 * 1024
_MAX_REPLY = 4096
_UNREACHABLE = "The virus scanner is not reachable right now; try again in a minute."


class ClamdScanner:
    """A ``VirusScanner`` backed by a clamd daemon listening on TCP."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout

    async def ping(self) -> None:
        reply = await self._exchange(b"zPING\0", None)
        if reply != "PONG":
            _log.warning("clamd_bad_ping", host=self._host, port=self._port, reply=reply[:200])
            raise ScannerUnavailableError("The virus scanner answered its health check wrongly.")

    async def scan_file(self, path: Path) -> ScanResult:
        reply = await self._exchange(b"zINSTREAM\0", path)
        return parse_instream_reply(reply)

    async def _exchange(self, command: bytes, path: Path | None) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(self._host, self._port)
                try:
                    return await _send_and_read(reader, writer, command, path)
                finally:
                    writer.close()
                    with suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError:
            _log.warning("clamd_timeout", host=self._host, port=self._port, timeout=self._timeout)
            raise ScannerUnavailableError(
                f"The virus scanner did not answer within {self._timeout:g} seconds; "
                "try again in a minute."
            ) from None
        except OSError as exc:
            _log.warning("clamd_unreachable", host=self._host, port=self._port, error=str(exc))
            raise ScannerUnavailableError(_UNREACHABLE) from exc


async def _send_and_read(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: bytes, path: Path | None
) -> str:
    writer.write(command)
    if path is not None:
        try:
            with path.open("rb") as source:
                await _stream_chunks(source, writer)
        except (ConnectionResetError, BrokenPipeError):
            # clamd closes the connection as soon as the stream passes StreamMaxLength; its
            # answer is already waiting in our receive buffer.
            pass
    else:
        await writer.drain()
    return await _read_reply(reader)


async def _stream_chunks(source: BinaryIO, writer: asyncio.StreamWriter) -> None:
    while True:
        chunk = await asyncio.to_thread(source.read, _CHUNK)
        if not chunk:
            break
        writer.write(struct.pack(">I", len(chunk)))
        writer.write(chunk)
        await writer.drain()
    writer.write(struct.pack(">I", 0))
    await writer.drain()


async def _read_reply(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\0")
    except asyncio.IncompleteReadError as exc:
        raw = exc.partial
    except asyncio.LimitOverrunError:
        raw = await reader.read(_MAX_REPLY)
    text = raw.rstrip(b"\0").decode("utf-8", "replace").strip()
    if not text:
        raise ConnectionResetError("clamd closed the connection without an answer")
    return text


def parse_instream_reply(reply: str) -> ScanResult:
    if reply == "stream: OK":
        return ScanResult(clean=True)
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        return ScanResult(clean=False, signature=reply[len("stream: ") : -len(" FOUND")].strip())
    if "size limit exceeded" in reply:
        raise FileTooLargeToScanError(
            "The file is larger than the virus scanner accepts, so it cannot be checked."
        )
    _log.warning("clamd_error_reply", reply=reply[:200])
    raise ScannerUnavailableError(
        "The virus scanner could not check the file right now; try again in a minute."
    )
