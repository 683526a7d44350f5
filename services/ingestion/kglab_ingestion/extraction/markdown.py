"""Markdown: one section per heading, with paragraphs, lists, tables and code kept apart."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from kglab_ingestion.extraction.model import Section

_PARSER = MarkdownIt("commonmark", {"html": False}).enable("table")


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)  # the alt text
        elif child.type == "html_inline":
            continue
    return "".join(parts).strip()


def extract_markdown(text: str) -> tuple[dict[str, Any], list[Section]]:
    tokens = _PARSER.parse(text)
    sections: list[Section] = []
    heading: str | None = None
    title: str | None = None
    quotes = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "blockquote_open":
            quotes += 1
        elif token.type == "blockquote_close":
            quotes -= 1
        if token.type == "heading_open":
            heading = _inline_text(tokens[i + 1])
            if title is None and token.tag == "h1":
                title = heading
            i += 3
            continue
        if token.type in ("bullet_list_open", "ordered_list_open"):
            i, items = _collect_list(tokens, i)
            if items:
                sections.append(Section(heading, "\n".join(items), "list"))
            continue
        if token.type == "table_open":
            i, rows = _collect_table(tokens, i)
            if rows:
                sections.append(Section(heading, "\n".join(rows), "table"))
            continue
        if token.type in ("fence", "code_block"):
            if token.content.strip():
                sections.append(Section(heading, token.content.rstrip("\n"), "code"))
        elif token.type == "inline":
            content = _inline_text(token)
            if content:
                sections.append(Section(heading, content, "quote" if quotes else "paragraph"))
        i += 1
    return ({"title": title} if title else {}), sections


def _collect_list(tokens: list[Token], start: int) -> tuple[int, list[str]]:
    depth = 0
    items: list[str] = []
    i = start
    while i < len(tokens):
        token = tokens[i]
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0:
                return i + 1, items
        elif token.type == "inline":
            content = _inline_text(token)
            if content:
                items.append("  " * (depth - 1) + "- " + content)
        elif token.type in ("fence", "code_block") and token.content.strip():
            items.append(token.content.rstrip("\n"))
        i += 1
    return i, items


def _collect_table(tokens: list[Token], start: int) -> tuple[int, list[str]]:
    rows: list[str] = []
    cells: list[str] = []
    i = start
    while i < len(tokens):
        token = tokens[i]
        if token.type == "tr_open":
            cells = []
        elif token.type == "inline":
            cells.append(_inline_text(token))
        elif token.type == "tr_close" and any(cells):
            rows.append(" | ".join(cells))
        elif token.type == "table_close":
            return i + 1, rows
        i += 1
    return i, rows
