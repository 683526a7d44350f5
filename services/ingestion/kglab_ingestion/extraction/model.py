"""What extraction produces: documents as units of sections, and chunks of text.

These are plain frozen dataclasses with no I/O, so the service, the worker and the tests share
them without pulling in any parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROCESSOR_VERSION = "kglab-extraction/1.0"

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
JSON = "application/json"
HTML = "text/html"

# Allowed media type -> the short label people read in messages.
MEDIA_TYPES: dict[str, str] = {
    PDF: "PDF",
    DOCX: "DOCX",
    MARKDOWN: "Markdown",
    TEXT: "text",
    JSON: "JSON",
    HTML: "HTML",
}

# File name extension (lower case, with the dot) -> the media type it promises.
EXTENSIONS: dict[str, str] = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
    ".text": TEXT,
    ".json": JSON,
    ".html": HTML,
    ".htm": HTML,
}


@dataclass(frozen=True)
class Section:
    """A run of text under one heading.

    ``kind`` says what the text is, so the chunker can keep it whole or split it sensibly:
    ``paragraph`` (prose), ``table`` (one row per line, cells joined by `` | ``), ``list`` (one
    item per line), ``code`` (lines kept verbatim), ``quote``, ``json`` (``path: value`` lines).
    """

    heading: str | None
    text: str
    kind: str = "paragraph"


@dataclass(frozen=True)
class ExtractionUnit:
    """One step of progress: a PDF page, or the whole document for the other formats."""

    index: int
    total: int
    sections: list[Section] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentInfo:
    title: str
    media_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Something the owner should know about how the file was read (shown on the job).
    notice: str | None = None


@dataclass(frozen=True)
class TextChunk:
    position: int
    text: str
    heading: str | None
