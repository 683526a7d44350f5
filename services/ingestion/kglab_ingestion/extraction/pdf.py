"""PDF text and metadata, page by page, with PDFium.

Only one page is loaded at a time and released before the next, so memory stays flat however
many pages the file has; pages before ``start`` are never loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kglab_ingestion.extraction.errors import ExtractionError
from kglab_ingestion.extraction.model import Section

PASSWORD_PROTECTED = "This PDF is password-protected."
DAMAGED = "This PDF is damaged and cannot be read."
_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


class PdfPages(Protocol):
    """An opened PDF: metadata up front, then each page's text on demand."""

    page_count: int
    metadata: dict[str, Any]

    def page_text(self, index: int) -> str: ...

    def close(self) -> None: ...


def _pdf_date(value: str) -> str | None:
    match = _PDF_DATE.match(value.strip())
    if not match:
        return None
    y, mo, d, h, mi, se = (
        int(p) if p else default
        for p, default in zip(match.groups(), (0, 1, 1, 0, 0, 0), strict=True)
    )
    try:
        return datetime(y, mo, d, h, mi, se, tzinfo=UTC).isoformat()
    except ValueError:
        return None


def pdf_metadata(raw: dict[str, str], page_count: int) -> dict[str, Any]:
    out: dict[str, Any] = {"pages": page_count}
    for key, name in (
        ("Title", "title"),
        ("Author", "author"),
        ("Subject", "subject"),
        ("Keywords", "keywords"),
        ("Creator", "creator"),
        ("Producer", "producer"),
    ):
        value = (raw.get(key) or raw.get(f"/{key}") or "").strip()
        if value:
            out[name] = value
    for key, name in (("CreationDate", "created"), ("ModDate", "modified")):
        value = raw.get(key) or raw.get(f"/{key}") or ""
        parsed = _pdf_date(str(value)) if value else None
        if parsed:
            out[name] = parsed
    return out


class PdfiumPages:
    def __init__(self, path: Path) -> None:
        import pypdfium2 as pdfium  # type: ignore[import-untyped]
        import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

        try:
            self._pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as error:
            if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
                raise ExtractionError(PASSWORD_PROTECTED) from None
            raise ExtractionError(DAMAGED) from None
        self.page_count = len(self._pdf)
        if self.page_count == 0:
            self._pdf.close()
            raise ExtractionError(DAMAGED)
        self.metadata = pdf_metadata(self._pdf.get_metadata_dict(skip_empty=True), self.page_count)

    def page_text(self, index: int) -> str:
        page = self._pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                return str(textpage.get_text_bounded())
            finally:
                textpage.close()
        finally:
            page.close()

    def close(self) -> None:
        self._pdf.close()


def open_pdf(path: Path) -> PdfPages:
    return PdfiumPages(path)


def page_paragraphs(text: str) -> list[str]:
    """Rebuild paragraphs from a page's lines.

    PDF text is laid out in lines, not paragraphs. A line ends its paragraph when the next line
    is blank, or when it is clearly shorter than the page's full lines (the last line of a
    paragraph, a heading); otherwise lines are joined, and a word hyphenated across a line
    break is put back together.
    """
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    longest = max((len(line) for line in lines), default=0)
    paragraphs: list[str] = []
    current = ""
    for line in lines:
        if not line:
            if current:
                paragraphs.append(current)
                current = ""
            continue
        if current.endswith(("\x02", "\xad")):
            current = current[:-1] + line
        elif current.endswith("-") and current[-2:-1].isalpha():
            current += line
        else:
            current = f"{current} {line}" if current else line
        ends_sentence = line.endswith((".", "!", "?", ":", '."', ".)"))
        if len(line) < 0.6 * longest or (ends_sentence and len(line) < 0.9 * longest):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return [p.replace("\x02", "").replace("\x00", "") for p in paragraphs if p.strip()]


def pdf_units(pages: PdfPages, start: int) -> Iterator[tuple[int, list[Section]]]:
    """Each page from ``start`` on, as paragraph sections; the document is closed at the end
    (or when the caller drops the iterator)."""
    try:
        for index in range(start, pages.page_count):
            try:
                text = pages.page_text(index)
            except ExtractionError:
                raise
            except Exception as error:  # a parser's own error for one broken page
                raise ExtractionError(
                    f"Page {index + 1} of this PDF is damaged and cannot be read."
                ) from error
            yield index, [Section(None, p, "paragraph") for p in page_paragraphs(text)]
    finally:
        pages.close()
