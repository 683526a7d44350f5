"""The two ways extraction refuses a file, each carrying a sentence written for a person."""

from __future__ import annotations


class UnsupportedFileError(Exception):
    """The file is not one of the allowed formats, or its content disagrees with its name (415)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ExtractionError(Exception):
    """The file has the right type but cannot be read (password, damage, invalid JSON, ...).

    ``retryable`` is false when trying again cannot help (the file itself is the problem).
    """

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
