"""JSON: validated, then flattened to ``path.to.key: value`` lines."""

from __future__ import annotations

import json
import re
from typing import Any

from kglab_ingestion.extraction.errors import ExtractionError
from kglab_ingestion.extraction.model import Section

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
# Python's messages, worded for people.
_MESSAGES = (
    ("Expecting property name enclosed in double quotes", "expected a property name in quotes"),
    ("Expecting value", "expected a value"),
    ("Unterminated string starting at", "a string is not closed"),
    ("Invalid control character at", "a control character inside a string"),
    ("Invalid \\escape", "an invalid escape sequence"),
    ("Invalid \\uXXXX escape", "an invalid \\u escape"),
    ("Extra data", "unexpected content after the end of the JSON"),
    ("Illegal trailing comma before end of object", "a trailing comma"),
    ("Illegal trailing comma before end of array", "a trailing comma"),
)
_EXPECTING_DELIMITER = re.compile(r"Expecting '(.)' delimiter")


def _readable(message: str) -> str:
    found = _EXPECTING_DELIMITER.match(message)
    if found:
        return f"expected '{found.group(1)}'"
    for prefix, readable in _MESSAGES:
        if message.startswith(prefix):
            return readable
    return message[:1].lower() + message[1:]


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ExtractionError(
            f"The JSON is not valid: {_readable(error.msg)} "
            f"at line {error.lineno}, column {error.colno}."
        ) from None
    except RecursionError:
        raise ExtractionError("The JSON is nested too deeply to read.") from None


def _key_path(parent: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value)


def flatten(value: Any) -> list[str]:
    """``path: value`` lines in document order (iterative: deep nesting cannot overflow)."""
    lines: list[str] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            if not node:
                lines.append(f"{path}: {{}}" if path else "{}")
            items = [(_key_path(path, str(k)), v) for k, v in node.items()]
            stack.extend(reversed(items))
        elif isinstance(node, list):
            if not node:
                lines.append(f"{path}: []" if path else "[]")
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(node)]))
        else:
            lines.append(f"{path}: {_scalar(node)}" if path else _scalar(node))
    return lines


def extract_json(text: str) -> tuple[dict[str, Any], list[Section]]:
    value = parse_json(text)
    metadata: dict[str, Any] = {}
    if isinstance(value, dict):
        for key in ("title", "name", "headline"):
            if isinstance(value.get(key), str) and value[key].strip():
                metadata["title"] = " ".join(value[key].split())
                break
    lines = flatten(value)
    return metadata, ([Section(None, "\n".join(lines), "json")] if lines else [])
