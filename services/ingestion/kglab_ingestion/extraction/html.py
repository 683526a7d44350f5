"""HTML: the article found by trafilatura (offline), with its headings, lists and tables."""

from __future__ import annotations

from typing import Any

from kglab_ingestion.extraction.model import Section


def _text(element: Any) -> str:
    return " ".join("".join(element.itertext()).split())


def _sections(body: Any) -> list[Section]:
    sections: list[Section] = []
    heading: str | None = None
    for element in body:
        tag = element.tag
        if tag == "head":
            heading = _text(element) or heading
        elif tag == "list":
            items = [f"- {_text(item)}" for item in element.iter("item") if _text(item)]
            if items:
                sections.append(Section(heading, "\n".join(items), "list"))
        elif tag == "table":
            rows = []
            for row in element.iter("row"):
                cells = [_text(cell) for cell in row.iter("cell")]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                sections.append(Section(heading, "\n".join(rows), "table"))
        elif tag == "code":
            code = "".join(element.itertext()).strip("\n")
            if code.strip():
                sections.append(Section(heading, code, "code"))
        else:
            text = _text(element)
            if text:
                kind = "quote" if tag == "quote" else "paragraph"
                sections.append(Section(heading, text, kind))
    return sections


def extract_html(html: str) -> tuple[dict[str, Any], list[Section]]:
    import trafilatura

    document = trafilatura.bare_extraction(
        html,
        with_metadata=True,
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        deduplicate=False,
    )
    metadata: dict[str, Any] = {}
    if document is None or isinstance(document, dict) or document.body is None:
        return metadata, []
    for name in ("title", "author", "date", "sitename", "description", "url", "language"):
        value = getattr(document, name, None)
        if value:
            metadata[name] = str(value)
    return metadata, _sections(document.body)
