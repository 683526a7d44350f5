"""The embedded scanner's signature loading and matching, and clamd's reply parsing."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from kglab_ingestion.scanning import (
    PROJECT_SIGNATURE_DIR,
    FileTooLargeToScanError,
    ScannerKind,
    ScannerSettings,
    ScannerUnavailableError,
    SignatureScanner,
    load_signatures,
)
from kglab_ingestion.scanning.clamd import parse_instream_reply
from kglab_ingestion.scanning.embedded import SignatureFileError


def eicar() -> bytes:
    return (
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS" + "-TEST-FILE!$H+H*"
    ).encode()


def test_the_project_signatures_load_and_do_not_carry_the_test_string_in_clear() -> None:
    signatures = load_signatures(PROJECT_SIGNATURE_DIR)
    assert [s.name for s in signatures.body] == ["Kglab.Test.EICAR"]
    assert signatures.body[0].pattern == eicar()
    for path in PROJECT_SIGNATURE_DIR.iterdir():
        assert b"EICAR-STANDARD" not in path.read_bytes()


def sig_dir(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "sigs"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Bad:0:*", "expected Name:TargetType:Offset:HexSignature"),
        ("Bad:1:*:4142", "only TargetType 0"),
        ("Bad:0:*:41??42", "only plain hex"),
        ("Bad:0:*:414", "only plain hex"),
        ("Bad:0:EOF-10:4142", "only '*' or a decimal offset"),
    ],
)
def test_unsupported_ndb_lines_are_refused_naming_the_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    directory = sig_dir(tmp_path, "x.ndb", f"Good:0:*:4142\n{line}\n")
    with pytest.raises(SignatureFileError, match=re.escape(f"x.ndb:2: {reason}")):
        load_signatures(directory)


def test_a_directory_without_signatures_is_refused(tmp_path: Path) -> None:
    directory = sig_dir(tmp_path, "readme.txt", "not a signature file")
    with pytest.raises(SignatureFileError, match="No signatures"):
        load_signatures(directory)
    with pytest.raises(SignatureFileError, match="does not exist"):
        load_signatures(tmp_path / "missing")


async def test_a_pattern_split_across_reads_is_found(tmp_path: Path) -> None:
    scanner = SignatureScanner(load_signatures(PROJECT_SIGNATURE_DIR), chunk_size=7)
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 101 + eicar() + b"y" * 13)
    result = await scanner.scan_file(path)
    assert result.signature == "Kglab.Test.EICAR.UNOFFICIAL"


async def test_a_fixed_offset_signature_matches_only_there(tmp_path: Path) -> None:
    directory = sig_dir(tmp_path, "t.ndb", "At.Ten:0:10:" + b"MARK".hex() + "\n")
    scanner = SignatureScanner(load_signatures(directory), chunk_size=4)
    hit, miss = tmp_path / "hit.bin", tmp_path / "miss.bin"
    hit.write_bytes(b"0123456789MARK-tail")
    miss.write_bytes(b"012345678MARK-tail")
    assert (await scanner.scan_file(hit)).signature == "At.Ten.UNOFFICIAL"
    assert (await scanner.scan_file(miss)).clean


async def test_hdb_whole_file_hashes_match_by_md5_and_size(tmp_path: Path) -> None:
    content = b"a very specific file\n"
    md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
    directory = sig_dir(tmp_path, "h.hdb", f"{md5}:{len(content)}:Exact.File\n{md5}:*:Any.Size\n")
    scanner = SignatureScanner(load_signatures(directory))
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    assert (await scanner.scan_file(path)).signature == "Exact.File.UNOFFICIAL"
    path.write_bytes(content + b"!")
    assert (await scanner.scan_file(path)).clean


def test_clamd_replies_are_parsed() -> None:
    assert parse_instream_reply("stream: OK").clean
    found = parse_instream_reply("stream: Win.Test.EICAR_HDB-1 FOUND")
    assert (found.clean, found.signature) == (False, "Win.Test.EICAR_HDB-1")
    with pytest.raises(FileTooLargeToScanError):
        parse_instream_reply("INSTREAM size limit exceeded. ERROR")
    with pytest.raises(ScannerUnavailableError, match="could not check"):
        parse_instream_reply("stream: Can't allocate memory ERROR")
    with pytest.raises(ScannerUnavailableError):
        parse_instream_reply("something unexpected")


def test_scanner_settings_need_a_clamd_address_for_clamd() -> None:
    with pytest.raises(ValidationError, match="KGLAB_CLAMD_URL"):
        ScannerSettings(kind=ScannerKind.CLAMD)
    with pytest.raises(ValidationError, match="tcp://host:port"):
        ScannerSettings(kind=ScannerKind.CLAMD, clamd_url="http://clamd:3310")
    settings = ScannerSettings(kind=ScannerKind.CLAMD, clamd_url="tcp://clamd:3310")
    assert settings.clamd_url == "tcp://clamd:3310"
