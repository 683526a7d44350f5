"""The holder of claimed chunks, for tests of one service at a time (adr/0020).

A service test publishes ``document.extracted`` or ``document.stored`` with a claim; the
service reads the chunks from ingestion or the document service. :func:`claimed` registers
chunks under a new claim, and :func:`holder` serves them on both internal routes exactly as
the two services do (404 for an unknown claim or another document), so the test needs neither
real service. The real routes are tested in their own services' tests and end to end.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Header, HTTPException

from kglab_shared.claims import CLAIM_HEADER, new_claim
from kglab_shared.events import ExtractedChunk

#: claim -> (owner, document id or job id, chunks); claims are random, so tests do not collide.
_HELD: dict[str, tuple[str, str, list[ExtractedChunk]]] = {}


def claimed(owner_id: str, key: str, chunks: list[ExtractedChunk]) -> str:
    """Hold ``chunks`` for the document (or job) ``key``; the claim that opens them."""
    claim = new_claim()
    _HELD[claim] = (owner_id, key, chunks)
    return claim


def _open(claim: str | None, key: str, owner_id: str | None) -> list[ExtractedChunk]:
    held = _HELD.get(claim or "")
    if held is None or held[1] != key or (owner_id is not None and held[0] != owner_id):
        raise HTTPException(404, "no such document")
    return held[2]


def holder() -> httpx.ASGITransport:
    app = FastAPI()

    @app.get("/internal/documents/{document_id}/chunks")
    async def stored(
        document_id: str, owner_id: str, claim: str | None = Header(None, alias=CLAIM_HEADER)
    ) -> dict[str, object]:
        chunks = _open(claim, document_id, owner_id)
        return {"items": [c.model_dump() for c in chunks], "next_cursor": None}

    @app.get("/internal/extractions/{job_id}")
    async def extracted(
        job_id: str, claim: str | None = Header(None, alias=CLAIM_HEADER)
    ) -> dict[str, object]:
        chunks = _open(claim, job_id, None)
        return {"items": [c.model_dump() for c in chunks], "next_cursor": None}

    return httpx.ASGITransport(app=app)


def held(claim: str) -> list[ExtractedChunk]:
    """The chunks ``claim`` opens (for a test that calls a service layer directly)."""
    return _HELD[claim][2]
