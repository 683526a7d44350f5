"""Deciding a file's real type from its first bytes, and checking that its name agrees."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from kglab_ingestion.extraction.archive import ArchiveRefused, check_members, local_members
from kglab_ingestion.extraction.encoding import bom_encoding, detect_encoding, looks_binary
from kglab_ingestion.extraction.errors import UnsupportedFileError
from kglab_ingestion.extraction.model import DOCX, EXTENSIONS, HTML, JSON, MEDIA_TYPES, PDF, TEXT

SNIFF_BYTES = 64 * 1024  # callers pass at least 8 KiB; more lets us see more of a ZIP
_ALLOWED = "upload PDF, DOCX, Markdown, text, JSON or HTML"

# Binary formats we recognise only to name them in the refusal.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a Linux program"),
    (b"MZ", "a Windows program"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy or password-protected Office file"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript file"),
)
_HTML_START = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|meta|title|article|main|div|section|p|h[1-6]|"
    rb"table|ul|ol|span|a|header|nav|!--)[\s>/]",
    re.IGNORECASE,
)
_JSON_START = re.compile(rb'[\[{"\-0-9]|true|false|null')


def display_name(filename: str) -> str:
    """The last part of a client-supplied name, safe to quote in a message."""
    name = PureWindowsPath(PurePosixPath(filename).name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > 80:
        name = name[:60] + "..." + name[-17:]
    return name or "(no name)"


def _extension(filename: str) -> str:
    return PurePosixPath(display_name(filename)).suffix.lower()


def _zip_kind(head: bytes) -> str:
    try:
        members = local_members(head)
        check_members(members)
    except ArchiveRefused as refused:
        raise UnsupportedFileError(
            f"The file is a compressed archive that was refused because {refused.reason}."
        ) from None
    names = {m.name for m in members}
    if "[Content_Types].xml" in names and any(n.startswith("word/") for n in names):
        return DOCX
    if "word/document.xml" in names:
        return DOCX
    if "[Content_Types].xml" in names and not names - {"[Content_Types].xml"}:
        return DOCX  # only the first member fits in ``head``: the full check happens on open
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook"
    if any(n.startswith("ppt/") for n in names):
        return "a PowerPoint presentation"
    if "mimetype" in names:
        return "an OpenDocument file"
    return "a ZIP archive"


def _text_view(head: bytes) -> bytes:
    """The head as ASCII-compatible bytes (UTF-16/32 narrowed) for the JSON and HTML checks."""
    encoding = detect_encoding(head, truncated=True)
    marked = bom_encoding(head)
    if encoding and encoding.startswith(("utf-16", "utf-32")):
        body = head[marked[1] :] if marked else head
        cut = len(body) - len(body) % (4 if encoding.startswith("utf-32") else 2)
        return body[:cut].decode(encoding, errors="replace").encode("utf-8", errors="replace")
    return head[marked[1] :] if marked else head


def _content_kind(head: bytes) -> str:
    """A media type we accept, or a phrase naming what the content is."""
    if not head:
        raise UnsupportedFileError("The file is empty; there is nothing to read.")
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(head)
    if head.startswith((b"PK\x05\x06", b"PK\x07\x08")):
        return "a ZIP archive"
    for magic, phrase in _MAGIC:
        if head.startswith(magic):
            return phrase
    encoding = detect_encoding(head, truncated=True)
    if encoding is None:
        return "binary data, not text"
    cut = head if not encoding.startswith(("utf-16", "utf-32")) else head[: len(head) // 4 * 4]
    if looks_binary(cut.decode(encoding, errors="replace")):
        return "binary data, not text"
    return TEXT


def _named(kind: str) -> str:
    if kind == "empty":
        return "nothing (the file is empty)"
    return f"a {MEDIA_TYPES[kind]} document" if kind in MEDIA_TYPES else kind


def _unicode_text(head: bytes) -> bool:
    """UTF-8, UTF-16 or UTF-32 text with few control characters: other encodings guessed by
    a detector are not trusted without a text extension to back them."""
    if not head:
        return False
    encoding = detect_encoding(head, truncated=True)
    if encoding is None or not encoding.startswith(("utf-8", "utf-16", "utf-32")):
        return False
    try:
        return _content_kind(head) == TEXT
    except UnsupportedFileError:
        return False


def sniff_media_type(head: bytes, filename: str) -> str:
    """The media type of a file from its first bytes (at least 8 KiB) and its name.

    The content decides; the name must agree with it. Text formats cannot be told apart by
    bytes alone, so the name picks Markdown, text, JSON or HTML, and JSON and HTML must then
    look like what they claim. Raises UnsupportedFileError with a sentence for the uploader.
    """
    name = display_name(filename)
    extension = _extension(filename)
    claimed = EXTENSIONS.get(extension)
    if claimed is None:
        # A name that promises nothing we read (README, LICENSE, notes.rst, data.csv): plain
        # text when the bytes are Unicode text, refused otherwise.
        if _unicode_text(head):
            return TEXT
        what = f"the extension {extension}" if extension else "no extension"
        try:
            content = _content_kind(head)
        except UnsupportedFileError:
            content = "empty"
        found = "" if content == TEXT else f" and its content is {_named(content)}"
        raise UnsupportedFileError(
            f"The file {name} has {what}{found}, which is not a format we read; {_ALLOWED}."
        )
    try:
        kind = _content_kind(head)
    except UnsupportedFileError as error:
        detail = error.detail.replace("The file", f"The file {name}", 1)
        raise UnsupportedFileError(detail) from None
    if kind == TEXT:
        if claimed in (PDF, DOCX):
            kind = "plain text"
        elif claimed == JSON:
            text = _text_view(head).lstrip()
            if not _JSON_START.match(text):
                kind = "text that does not look like JSON"
            else:
                return JSON
        elif claimed == HTML:
            text = _text_view(head).lstrip()
            if not _HTML_START.search(text[:4096]) or not text.startswith(b"<"):
                kind = "text that does not look like HTML"
            else:
                return HTML
        else:
            return claimed
    if kind == claimed:
        return kind
    raise UnsupportedFileError(
        f"The file is named {name} but its content is {_named(kind)}; {_ALLOWED}."
    )
