"""``open_document``: one entry point for every format, lazy where the format allows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from kglab_ingestion.extraction.encoding import decode_text, decoding_notice
from kglab_ingestion.extraction.errors import ExtractionError
from kglab_ingestion.extraction.model import (
    DOCX,
    HTML,
    JSON,
    MARKDOWN,
    MEDIA_TYPES,
    PDF,
    TEXT,
    DocumentInfo,
    ExtractionUnit,
    Section,
)
from kglab_ingestion.extraction.pdf import open_pdf, pdf_units
from kglab_ingestion.extraction.sniff import display_name

# Formats other than PDF are read whole; a text file this large is not a document.
MAX_TEXT_BYTES = 64 * 1024 * 1024
_BLANK_LINES = re.compile(r"\n\s*\n")


def _read_text(path: Path, label: str) -> tuple[str, str, str | None]:
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise ExtractionError(
                f"This {label} file is larger than {MAX_TEXT_BYTES // 2**20} MB and cannot be read."
            )
        data = path.read_bytes()
    except OSError:
        raise ExtractionError("The uploaded file could not be read.", retryable=True) from None
    try:
        text, encoding = decode_text(data)
    except ValueError:
        raise ExtractionError(f"This {label} file is not text in any encoding we know.") from None
    notice = decoding_notice(data, encoding)
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding, notice


def _plain_sections(text: str) -> list[Section]:
    return [
        Section(None, " ".join(line.strip() for line in block.splitlines()).strip(), "paragraph")
        for block in _BLANK_LINES.split(text)
        if block.strip()
    ]


def _title(metadata: dict[str, Any], source_name: str) -> str:
    title = metadata.get("title")
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())
    stem = PurePosixPath(display_name(source_name)).stem
    return stem or "Untitled"


def _single(sections: list[Section], start: int) -> Iterator[ExtractionUnit]:
    if start < 1:
        yield ExtractionUnit(0, 1, sections)


class OpenDocument(Protocol):
    """The extraction port, as the worker calls it (:func:`open_document` is the one adapter;
    tests and benchmarks wrap it to make extraction slow or failing)."""

    def __call__(
        self, path: Path, media_type: str, *, source_name: str, start: int = 0
    ) -> tuple[DocumentInfo, Iterator[ExtractionUnit]]: ...


def open_document(
    path: Path,
    media_type: str,
    *,
    source_name: str,
    start: int = 0,
) -> tuple[DocumentInfo, Iterator[ExtractionUnit]]:
    """Open a stored file of a sniffed ``media_type``: its info now, its units lazily.

    Problems with the file itself (a password, damage, invalid JSON) raise ExtractionError here,
    before any unit. PDF units are pages, produced one at a time from ``start`` (skipped pages
    are not rendered); every other format is one unit, which ``start >= 1`` skips.
    """
    if media_type not in MEDIA_TYPES:
        raise ExtractionError(f"Files of type {media_type} cannot be read.")
    if start < 0:
        raise ValueError("start must be >= 0")
    if media_type == PDF:
        pages = open_pdf(path)
        info = DocumentInfo(_title(pages.metadata, source_name), PDF, dict(pages.metadata))
        total = pages.page_count
        units = (
            ExtractionUnit(index, total, sections) for index, sections in pdf_units(pages, start)
        )
        return info, units

    metadata: dict[str, Any]
    sections: list[Section]
    notice: str | None = None
    if media_type == DOCX:
        from kglab_ingestion.extraction.docx import extract_docx

        metadata, sections = extract_docx(path)
    else:
        label = MEDIA_TYPES[media_type]
        text, encoding, notice = _read_text(path, label)
        extract: Callable[[str], tuple[dict[str, Any], list[Section]]]
        if media_type == MARKDOWN:
            from kglab_ingestion.extraction.markdown import extract_markdown as extract
        elif media_type == JSON:
            from kglab_ingestion.extraction.jsondoc import extract_json as extract
        elif media_type == HTML:
            from kglab_ingestion.extraction.html import extract_html as extract
        else:
            assert media_type == TEXT
            extract = lambda body: ({}, _plain_sections(body))  # noqa: E731
        metadata, sections = extract(text)
        metadata = {"encoding": encoding, **metadata}
        if media_type == HTML:
            notice = None  # a page names its own encoding; guessing is not news there
    info = DocumentInfo(_title(metadata, source_name), media_type, metadata, notice)
    return info, _single(sections, start)
