"""OpenAPI helpers for error responses whose cases are different domain errors."""

from __future__ import annotations

from typing import Any

from kglab_shared.errors import PROBLEM_JSON, DomainError, UnprocessableError, documented


class InvalidRequest(UnprocessableError):
    """How the shared handler answers a request FastAPI could not validate (for examples)."""

    title, code = "Invalid request", "validation_error"


def problem_cases(description: str, *cases: tuple[type[DomainError], str]) -> dict[str, Any]:
    """A ``responses=`` entry with one problem example per (error, detail) case.

    :func:`kglab_shared.errors.documented` shows cases of one error class; a status some
    routes answer with several (a 422 for an empty file and for malware) needs one each.
    """
    examples: dict[str, Any] = {}
    for error, detail in cases:
        shown = documented(error, detail)["content"][PROBLEM_JSON]["example"]
        examples[f"case{len(examples) + 1}"] = {"summary": detail, "value": shown}
    return {"description": description, "content": {PROBLEM_JSON: {"examples": examples}}}
