"""Why a fetch failed, in words a person understands, and whether trying later may help."""

from __future__ import annotations

from kglab_shared.errors import DomainError


class FetchError(DomainError):
    """A page could not be fetched. ``retryable`` says whether a later attempt may succeed."""

    title = "The page could not be fetched"
    code = "fetch_failed"

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable
        # When raised inside a request: 503 (try again later) or 422 (this URL will not work).
        self.status = 503 if retryable else 422
