"""Claim checks: events carry a document's ids and a claim; the text stays with its owner.

``document.extracted`` and ``document.stored`` name a document and carry a *claim*, a random
token issued when the document was extracted. The service that holds the chunks (ingestion
until the document service has stored them, the document service afterwards) serves them on an
internal route to whoever presents that claim in :data:`CLAIM_HEADER`, and to nobody else: the
claim opens one document's chunks, which the event itself carried before (adr/0020).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from kglab_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from kglab_shared.events import DocumentStored, ExtractedChunk
from kglab_shared.tracing import current_trace_headers

CLAIM_HEADER = "X-KGLab-Claim"


def new_claim() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def claim_digest(claim: str) -> str:
    """What the holder stores: the claim itself never sits in a database."""
    return hashlib.sha256(claim.encode()).hexdigest()


def claim_matches(digest: str | None, presented: str | None) -> bool:
    return bool(digest and presented) and hmac.compare_digest(
        digest or "", claim_digest(presented or "")
    )


#: Answers that mean "the holder is not there right now" (restarting, or behind a proxy that
#: has no backend for it yet), as opposed to an answer about the document.
_UNAVAILABLE = frozenset({502, 503, 504})


class HolderUnavailableError(Exception):
    """The service holding the chunks did not answer (or answered 502/503/504)."""


class ClaimedChunkReader:
    """Reads a document's chunks, page by page, from the service that holds them.

    None when the holder answers 404 (the document is gone or the claim opens nothing). While
    the holder is unavailable (no connection, 502/503/504: it is restarting, say) each page is
    tried again with exponential backoff for up to ``unavailable_budget_s``: the bus's own
    retries (three attempts within seconds) would otherwise dead-letter the event before a
    restarted service is back. Any other failure raises at once, so the bus retries as usual.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        unavailable_budget_s: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout_s), transport=transport
        )
        self._budget_s = unavailable_budget_s

    async def _get(
        self, path: str, query: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(HolderUnavailableError),
            stop=stop_after_delay(self._budget_s),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    response = await self._client.get(path, params=query, headers=headers)
                except httpx.TransportError as exc:
                    raise HolderUnavailableError(f"{path}: {exc!r}") from exc
                if response.status_code in _UNAVAILABLE:
                    raise HolderUnavailableError(f"{path}: {response.status_code}")
                return response
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def read(
        self, path: str, claim: str, params: dict[str, str] | None = None
    ) -> list[ExtractedChunk] | None:
        headers = {CLAIM_HEADER: claim, **current_trace_headers()}
        if correlation_id := get_correlation_id():
            headers[REQUEST_ID_HEADER] = correlation_id
        chunks: list[ExtractedChunk] = []
        query: dict[str, Any] = dict(params or {})
        while True:
            response = await self._get(path, query, headers)
            if response.status_code == 404:
                return None
            response.raise_for_status()
            page = response.json()
            chunks.extend(ExtractedChunk.model_validate(item) for item in page["items"])
            if not page.get("next_cursor"):
                return chunks
            query["cursor"] = page["next_cursor"]

    async def read_stored(self, event: DocumentStored) -> list[ExtractedChunk] | None:
        """A stored document's chunks, from the document service."""
        return await self.read(
            f"/internal/documents/{event.document_id}/chunks",
            event.claim,
            {"owner_id": event.owner_id},
        )

    async def close(self) -> None:
        await self._client.aclose()
