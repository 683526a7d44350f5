"""The graph service, as the vector service sees it: documents related to some chunks.

``search?expand=graph`` asks the graph service which other documents share entities with the
top hits. It is a call on the caller's behalf: the caller's identity assertion is forwarded, so
the graph service applies its own owner scoping. A graph service that is down or slow degrades
the answer (no related documents, and a notice saying why), never fails the search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from kglab_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from kglab_shared.identity import IDENTITY_HEADER
from kglab_shared.logging import get_logger
from kglab_shared.tracing import current_trace_headers

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GraphDocument:
    document_id: str
    title: str
    shared_entities: int
    via: tuple[str, ...]


class GraphUnavailableError(Exception):
    """The graph service did not answer usefully; ``str()`` is a sentence for the caller."""


class RelatedDocuments(Protocol):
    async def related(
        self,
        identity_assertion: str,
        chunk_ids: Sequence[str],
        *,
        exclude_documents: Sequence[str],
        limit: int,
    ) -> list[GraphDocument]: ...

    async def close(self) -> None: ...


class HttpGraphClient:
    """Calls ``GET /api/v1/graph/related-documents`` on the graph service."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    async def related(
        self,
        identity_assertion: str,
        chunk_ids: Sequence[str],
        *,
        exclude_documents: Sequence[str],
        limit: int,
    ) -> list[GraphDocument]:
        params = httpx.QueryParams(
            [
                *(("chunk_id", c) for c in chunk_ids),
                *(("exclude", d) for d in exclude_documents),
                ("limit", str(limit)),
            ]
        )
        headers = {IDENTITY_HEADER: identity_assertion, **current_trace_headers()}
        if correlation_id := get_correlation_id():
            headers[REQUEST_ID_HEADER] = correlation_id
        try:
            response = await self._client.get(
                "/api/v1/graph/related-documents", params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            _log.warning("graph_related_timeout", error=str(exc))
            raise GraphUnavailableError(
                "The graph service took too long; related documents are left out."
            ) from exc
        except httpx.HTTPError as exc:
            _log.warning("graph_related_unreachable", error=str(exc))
            raise GraphUnavailableError(
                "The graph service is unavailable; related documents are left out."
            ) from exc
        if response.status_code != 200:
            _log.warning("graph_related_refused", status=response.status_code)
            raise GraphUnavailableError(
                f"The graph service answered {response.status_code}; "
                "related documents are left out."
            )
        try:
            return [
                GraphDocument(
                    document_id=str(item["document_id"]),
                    title=str(item["title"]),
                    shared_entities=int(item["shared_entities"]),
                    via=tuple(str(v) for v in item["via"]),
                )
                for item in response.json()["results"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise GraphUnavailableError(
                "The graph service sent an answer this service cannot read; "
                "related documents are left out."
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()
