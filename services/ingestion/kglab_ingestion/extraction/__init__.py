"""Text extraction for ingestion: sniffing, per-format extraction, chunking, near-duplicates.

Pure library code: no HTTP, database or bus. The ingestion worker calls ``sniff_media_type``
on upload, ``open_document`` and ``chunk_sections`` in the job, and ``minhash_signature`` to
find near-duplicates. See adr/0008-extraction.md for the libraries and the measurements.
"""

from kglab_ingestion.extraction.chunking import chunk_sections
from kglab_ingestion.extraction.documents import OpenDocument, open_document
from kglab_ingestion.extraction.errors import ExtractionError, UnsupportedFileError
from kglab_ingestion.extraction.minhash import estimated_similarity, minhash_signature
from kglab_ingestion.extraction.model import (
    MEDIA_TYPES,
    PROCESSOR_VERSION,
    DocumentInfo,
    ExtractionUnit,
    Section,
    TextChunk,
)
from kglab_ingestion.extraction.sniff import SNIFF_BYTES, display_name, sniff_media_type

__all__ = [
    "MEDIA_TYPES",
    "PROCESSOR_VERSION",
    "SNIFF_BYTES",
    "DocumentInfo",
    "ExtractionError",
    "ExtractionUnit",
    "OpenDocument",
    "Section",
    "TextChunk",
    "UnsupportedFileError",
    "chunk_sections",
    "display_name",
    "estimated_similarity",
    "minhash_signature",
    "open_document",
    "sniff_media_type",
]
