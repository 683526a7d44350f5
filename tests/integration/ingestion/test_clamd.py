"""The scanner contract, one body for both adapters (embedded matcher and a real clamd), plus
clamd's failure modes: down, silent, and past its stream size limit."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kglab_ingestion.scanning import (
    ClamdScanner,
    FileTooLargeToScanError,
    ScannerKind,
    ScannerSettings,
    ScannerUnavailableError,
    VirusScanner,
    create_scanner,
)
from kglab_ingestion.scanning.settings import parse_clamd_url
from tests.isolation import LOOPBACK, free_port

EXPECTED_SIGNATURE = "Kglab.Test.EICAR.UNOFFICIAL"


def eicar() -> bytes:
    # Built from parts so no source file of ours carries the test string itself.
    return (
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS" + "-TEST-FILE!$H+H*"
    ).encode()


@pytest.fixture(params=[ScannerKind.EMBEDDED, ScannerKind.CLAMD])
def scanner(request: pytest.FixtureRequest) -> VirusScanner:
    if request.param is ScannerKind.EMBEDDED:
        return create_scanner(ScannerSettings())
    url = request.getfixturevalue("clamd_url")
    return create_scanner(ScannerSettings(kind=ScannerKind.CLAMD, clamd_url=url))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_clean_file_passes(scanner: VirusScanner, tmp_path: Path) -> None:
    path = write(tmp_path / "notes.md", b"# Notes\n\nNothing to see here.\n" * 1000)
    result = await scanner.scan_file(path)
    assert result.clean
    assert result.signature is None


async def test_eicar_is_refused_with_its_signature_name(
    scanner: VirusScanner, tmp_path: Path
) -> None:
    result = await scanner.scan_file(write(tmp_path / "eicar.txt", eicar()))
    assert not result.clean
    assert result.signature == EXPECTED_SIGNATURE


async def test_eicar_inside_a_bigger_file_is_refused(scanner: VirusScanner, tmp_path: Path) -> None:
    # Straddles the 1 MiB read boundary of the embedded scanner and clamd's 256 KiB chunks.
    before = os.urandom(1024 * 1024 - 30)
    after = os.urandom(2 * 1024 * 1024)
    result = await scanner.scan_file(write(tmp_path / "report.pdf", before + eicar() + after))
    assert not result.clean
    assert result.signature == EXPECTED_SIGNATURE


async def test_empty_file_is_clean(scanner: VirusScanner, tmp_path: Path) -> None:
    result = await scanner.scan_file(write(tmp_path / "empty.txt", b""))
    assert result.clean


async def test_ping_answers(scanner: VirusScanner) -> None:
    await scanner.ping()


async def test_a_real_clamd_refuses_a_stream_past_its_limit(clamd_url: str, tmp_path: Path) -> None:
    # deploy/local/servers.sh sets StreamMaxLength 64M (uploads stop at 50 MB).
    path = tmp_path / "huge.bin"
    with path.open("wb") as out:
        out.truncate(65 * 1024 * 1024)
    host, port = parse_clamd_url(clamd_url)
    with pytest.raises(FileTooLargeToScanError) as caught:
        await ClamdScanner(host, port, timeout=60).scan_file(path)
    assert caught.value.status == 413
    assert "cannot be checked" in caught.value.detail


async def test_clamd_down_is_unavailable_never_clean(tmp_path: Path) -> None:
    scanner = ClamdScanner(LOOPBACK, free_port(), timeout=5)
    with pytest.raises(ScannerUnavailableError) as caught:
        await scanner.scan_file(write(tmp_path / "a.txt", b"hello"))
    assert caught.value.status == 503
    assert "not reachable" in caught.value.detail
    with pytest.raises(ScannerUnavailableError):
        await scanner.ping()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and reads but never answers (a hung clamd)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, LOOPBACK, 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_a_silent_clamd_times_out_as_unavailable(silent_server: int, tmp_path: Path) -> None:
    scanner = ClamdScanner(LOOPBACK, silent_server, timeout=0.5)
    with pytest.raises(ScannerUnavailableError) as caught:
        await scanner.scan_file(write(tmp_path / "a.txt", b"hello"))
    assert "did not answer within 0.5 seconds" in caught.value.detail
