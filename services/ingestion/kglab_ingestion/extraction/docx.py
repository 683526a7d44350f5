"""DOCX: paragraphs under their headings, tables as rows of cells, images ignored."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from kglab_ingestion.extraction.archive import ArchiveRefused, central_members, check_members
from kglab_ingestion.extraction.errors import ExtractionError
from kglab_ingestion.extraction.model import Section

DAMAGED = "This DOCX file is damaged or is not a Word document."


def _check_archive(path: Path) -> None:
    try:
        members = central_members(path)
        check_members(members)
    except ArchiveRefused as refused:
        raise ExtractionError(f"This DOCX file was refused because {refused.reason}.") from None
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ExtractionError(DAMAGED) from None
    if "word/document.xml" not in {m.name for m in members} and not any(
        m.name.endswith("document.xml") for m in members
    ):
        raise ExtractionError(DAMAGED)


def _table_rows(table: Any) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell repeats for every grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 0
    if style_name.startswith("Heading"):
        tail = style_name.removeprefix("Heading").strip()
        return int(tail) if tail.isdigit() else 1
    return None


def extract_docx(path: Path) -> tuple[dict[str, Any], list[Section]]:
    """``(metadata, sections)``; raises ExtractionError for bombs and damaged files."""
    _check_archive(path)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except Exception as error:  # python-docx raises KeyError, ValueError, lxml errors...
        if "macroEnabled" in str(error):
            raise ExtractionError(
                "This Word file contains macros (DOCM); save it as a plain DOCX and upload again."
            ) from None
        raise ExtractionError(DAMAGED) from None

    sections: list[Section] = []
    heading: str | None = None
    title: str | None = None
    tables = 0
    try:
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                tables += 1
                rows = _table_rows(block)
                if rows:
                    sections.append(Section(heading, "\n".join(rows), "table"))
                continue
            text = block.text.strip()
            if not text:
                continue
            style = block.style.name if block.style is not None else ""
            level = _heading_level(style or "")
            if level is not None:
                heading = " ".join(text.split())
                if title is None:
                    title = heading
                continue
            if style and style.startswith("List"):
                if sections and sections[-1].kind == "list" and sections[-1].heading == heading:
                    previous = sections.pop()
                    sections.append(Section(heading, f"{previous.text}\n- {text}", "list"))
                else:
                    sections.append(Section(heading, f"- {text}", "list"))
                continue
            sections.append(Section(heading, text, "paragraph"))
        core = document.core_properties
        images = len(document.inline_shapes)
    except Exception as error:
        raise ExtractionError(DAMAGED) from error

    metadata: dict[str, Any] = {"tables": tables, "images": images}
    if core.title:
        metadata["title"] = core.title
    elif title:
        metadata["title"] = title
    if core.author:
        metadata["author"] = core.author
    if core.created:
        metadata["created"] = core.created.isoformat()
    if core.modified:
        metadata["modified"] = core.modified.isoformat()
    return metadata, sections
