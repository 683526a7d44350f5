"""Looking inside ZIP containers (DOCX) without inflating them.

A ZIP states every member's compressed and uncompressed size, in the local header in front of
the data and again in the central directory at the end. We refuse a container whose stated sizes
or compression ratios are those of a zip bomb before any byte is decompressed; ``zipfile`` then
never produces more than the stated size, so an archive that lies about it fails its CRC check
instead of flooding memory.
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 5_000
# Word XML compresses 5-20:1; anything far beyond that on a large member is a bomb.
MAX_RATIO = 100
RATIO_APPLIES_ABOVE = 4 * 1024 * 1024

_LOCAL_HEADER = re.compile(rb"PK\x03\x04")
_LOCAL_FIXED = struct.Struct("<4sHHHHHIIIHH")


@dataclass(frozen=True)
class Member:
    name: str
    compressed: int
    uncompressed: int
    encrypted: bool


class ArchiveRefused(Exception):
    """The container is a likely zip bomb or cannot be inspected; ``reason`` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _zip64_sizes(extra: bytes, compressed: int, uncompressed: int) -> tuple[int, int]:
    offset = 0
    while offset + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, offset)
        body = extra[offset + 4 : offset + 4 + size]
        if tag == 0x0001:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if uncompressed == 0xFFFFFFFF and values:
                uncompressed = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            break
        offset += 4 + size
    return compressed, uncompressed


def local_members(head: bytes) -> list[Member]:
    """Members whose local headers start inside ``head``; sizes are 0 when deferred to a
    data descriptor (general-purpose flag bit 3)."""
    members = []
    for match in _LOCAL_HEADER.finditer(head):
        start = match.start()
        if start + _LOCAL_FIXED.size > len(head):
            break
        (_, _, flags, _, _, _, _, compressed, uncompressed, name_len, extra_len) = (
            _LOCAL_FIXED.unpack_from(head, start)
        )
        name_start = start + _LOCAL_FIXED.size
        raw_name = head[name_start : name_start + name_len]
        if len(raw_name) < name_len:
            break
        extra = head[name_start + name_len : name_start + name_len + extra_len]
        if flags & 0x08:
            compressed = uncompressed = 0
        else:
            compressed, uncompressed = _zip64_sizes(extra, compressed, uncompressed)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        members.append(Member(name, compressed, uncompressed, bool(flags & 0x01)))
    return members


def _human(size: int) -> str:
    if size >= 1024**3:
        return f"{size / 1024**3:.1f} GB"
    return f"{size / 1024**2:.0f} MB"


def check_members(members: list[Member]) -> None:
    """Raise ArchiveRefused if the stated sizes are those of a zip bomb or it is encrypted."""
    if len(members) > MAX_MEMBERS:
        raise ArchiveRefused(f"it holds {len(members)} files, more than a document ever needs")
    total = 0
    for member in members:
        if member.encrypted:
            raise ArchiveRefused("its contents are encrypted")
        total += member.uncompressed
        if member.uncompressed > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            raise ArchiveRefused(
                f"it would expand to more than {_human(max(member.uncompressed, total))}, "
                "which is how a zip bomb looks"
            )
        if member.uncompressed > RATIO_APPLIES_ABOVE:
            ratio = member.uncompressed / max(member.compressed, 1)
            if ratio > MAX_RATIO:
                raise ArchiveRefused(
                    f"a part of it would expand {ratio:,.0f} times "
                    f"(to {_human(member.uncompressed)}), which is how a zip bomb looks"
                )


def central_members(path: Path) -> list[Member]:
    """Every member as the central directory states it; raises zipfile.BadZipFile."""
    with zipfile.ZipFile(path) as archive:
        return [
            Member(info.filename, info.compress_size, info.file_size, bool(info.flag_bits & 0x1))
            for info in archive.infolist()
        ]
