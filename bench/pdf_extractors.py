"""The PDF extractors the extraction benchmark compares: PDFium (what ingestion uses) and pypdf.

pypdf (pure Python) is the alternative adr/0008 measured PDFium against; it lives here, not in
the service, which has one PDF extractor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kglab_ingestion.extraction.errors import ExtractionError
from kglab_ingestion.extraction.model import Section
from kglab_ingestion.extraction.pdf import (
    DAMAGED,
    PASSWORD_PROTECTED,
    PdfiumPages,
    PdfPages,
    pdf_metadata,
    pdf_units,
)


class PypdfPages:
    def __init__(self, path: Path) -> None:
        import pypdf
        from pypdf.errors import PyPdfError

        try:
            self._reader = pypdf.PdfReader(path)
            if self._reader.is_encrypted and not self._reader.decrypt(""):
                raise ExtractionError(PASSWORD_PROTECTED)
            self.page_count = len(self._reader.pages)
            raw = {k: str(v) for k, v in (self._reader.metadata or {}).items()}
        except ExtractionError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
            if "password" in str(error).lower() or "decrypt" in str(error).lower():
                raise ExtractionError(PASSWORD_PROTECTED) from None
            raise ExtractionError(DAMAGED) from None
        if self.page_count == 0:
            raise ExtractionError(DAMAGED)
        self.metadata = pdf_metadata(raw, self.page_count)

    def page_text(self, index: int) -> str:
        return self._reader.pages[index].extract_text()

    def close(self) -> None:
        self._reader.close()


PDF_EXTRACTORS: dict[str, type[PdfiumPages] | type[PypdfPages]] = {
    "pdfium": PdfiumPages,
    "pypdf": PypdfPages,
}


def pdf_sections(path: Path, extractor: str) -> Iterator[list[Section]]:
    """Every page's sections, read by ``extractor`` and split as ingestion splits them."""
    pages: PdfPages = PDF_EXTRACTORS[extractor](path)
    return (sections for _, sections in pdf_units(pages, 0))
