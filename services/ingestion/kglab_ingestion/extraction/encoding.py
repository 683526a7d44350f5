"""Turning bytes into text: byte-order marks, UTF-8, UTF-16 without a mark, then detection."""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

# Control characters that do not occur in text files (tab, newline, form feed and carriage
# return do, and so does ESC in some terminal logs, so it is left out).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """The encoding a byte-order mark announces and the mark's length, if there is one."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text that is mostly ASCII has a zero byte in every other position."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def detect_encoding(data: bytes, *, truncated: bool = False) -> str | None:
    """The encoding of ``data``, or None when it is not text.

    ``truncated`` says ``data`` is only the beginning of a file, so a multi-byte character cut
    at the end is not held against it.
    """
    marked = bom_encoding(data)
    if marked is not None:
        return marked[0]
    if not data:
        return "utf-8"
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return utf16
    if b"\x00" in data:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=not truncated)
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    matches = list(from_bytes(data[:65536]))
    if not matches:
        return None
    best = matches[0]
    # Western text without a BOM is Latin-1 or its Windows superset far more often than the
    # Baltic or Central European code pages a detector may rank first on a short sample:
    # prefer cp1252 whenever it reads the bytes about as cleanly as the detector's first choice.
    for match in matches:
        if match.encoding in ("cp1252", "latin_1") and match.chaos <= best.chaos + 0.05:
            return "cp1252"
    return str(best.encoding)


def looks_binary(text: str) -> bool:
    """True when decoded text is full of control characters: binary data, not prose."""
    if not text:
        return False
    controls = len(_BINARY_CONTROLS.findall(text[:65536]))
    return controls > max(2, len(text[:65536]) // 200)


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``; raises ValueError when the bytes are not text in any encoding."""
    encoding = detect_encoding(data)
    if encoding is None:
        raise ValueError("not text")
    marked = bom_encoding(data)
    body = data[marked[1] :] if marked else data
    text = body.decode(encoding, errors="replace")
    if looks_binary(text):
        raise ValueError("not text")
    return text, encoding


_UNICODE = ("utf-8", "utf-16", "utf-32")


def decoding_notice(data: bytes, encoding: str) -> str | None:
    """A sentence for the owner when ``data`` was not read exactly as Unicode text: read in a
    guessed encoding, or with bytes that had to be replaced. None when it was."""
    marked = bom_encoding(data)
    body = data[marked[1] :] if marked else data
    try:
        body.decode(encoding)
        lossy = 0
    except UnicodeDecodeError:
        lossy = body.decode(encoding, errors="replace").count("\ufffd") - body.decode(
            encoding, errors="ignore"
        ).count("\ufffd")
    guessed = not encoding.lower().replace("_", "-").startswith(_UNICODE)
    if not guessed and not lossy:
        return None
    parts = []
    if guessed:
        parts.append(
            f"The text is not valid UTF-8; it was read as {encoding}, the likeliest encoding"
        )
    else:
        parts.append(f"The text was read as {encoding}")
    if lossy:
        parts.append(
            f"{lossy} byte sequence{'s' if lossy != 1 else ''} could not be read and "
            f"{'were' if lossy != 1 else 'was'} replaced with \ufffd"
        )
    return (
        "; ".join(parts)
        + ". If some characters look wrong, save the file as UTF-8 and upload it again."
    )
