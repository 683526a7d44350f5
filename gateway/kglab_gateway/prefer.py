"""``Prefer: wait=N`` (RFC 7240) on ``POST /api/v1/files``: small files answered at once.

The brief asks for "real-time for files under 1 MB, queue for larger files". Every upload is a
job (the pipeline is the same for all sizes); a client that would rather wait than poll sends
``Prefer: wait=N``. For a file under 1 MB the gateway then follows the job for up to N seconds
(at most ``MAX_WAIT_S``): once it is ``completed`` (readable, searchable and in the graph, see
the README) the answer is ``201 Created`` with the document and its ``Location``; otherwise the
``202 Accepted`` with the job as it stands then, as without the header. Either way the answer
says ``Preference-Applied: wait=N``. An API key that may not read documents gets the 202 at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response

from kglab_gateway.policy import authorize
from kglab_gateway.proxy import UpstreamPool
from kglab_shared.errors import DomainError
from kglab_shared.identity import IDENTITY_HEADER, Identity

PATH = "/api/v1/files"
MAX_WAIT_S = 30
SMALL_FILE_BYTES = 1_000_000
#: Multipart framing around the file (boundaries, part headers) counted in Content-Length.
_FRAMING_BYTES = 4096
_WAIT = re.compile(r"(?:^|[\s,;])wait\s*=\s*\"?(\d{1,6})\"?", re.IGNORECASE)
_STEP_S = 0.1


def requested_wait(headers: Headers) -> int | None:
    """The wait a small upload's client asked for, capped; None when it did not ask, or when
    the body is not known to be small."""
    waits = [int(m.group(1)) for value in headers.getlist("prefer") for m in _WAIT.finditer(value)]
    if not waits:
        return None
    declared = headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > SMALL_FILE_BYTES + _FRAMING_BYTES:
        return None
    return min(min(waits), MAX_WAIT_S)


async def answer_when_ready(
    accepted: Response, wait_s: int, identity: Identity, assertion: str, pool: UpstreamPool
) -> Response:
    """The 201 with the document if the job completes within ``wait_s``, else the 202 with the
    job as it is then."""
    applied = {"Preference-Applied": f"wait={wait_s}"}
    job: dict[str, Any] = json.loads(bytes(accepted.body))
    job_id = str(job.get("job_id", ""))
    try:
        authorize("GET", f"/api/v1/jobs/{job_id}", identity)
        authorize("GET", "/api/v1/documents/x", identity)
    except DomainError:
        return accepted  # a key that may not read what it would be given: no waiting
    headers = {IDENTITY_HEADER: assertion}
    deadline = time.monotonic() + wait_s
    while job.get("status") not in ("completed", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(_STEP_S)
        latest = await pool.clients["ingestion"].get(f"/api/v1/jobs/{job_id}", headers=headers)
        if latest.status_code != 200:
            break
        job = latest.json()
    document_id = job.get("document_id")
    if job.get("status") == "completed" and document_id:
        found = await pool.clients["document"].get(
            f"/api/v1/documents/{document_id}", headers=headers
        )
        if found.status_code == 200:
            return Response(
                found.content,
                201,
                headers={
                    **applied,
                    "Location": f"/api/v1/documents/{document_id}",
                    "Content-Type": "application/json",
                },
                media_type="application/json",
            )
    kept = {
        k: v
        for k, v in accepted.headers.items()
        if k.lower() not in ("content-length", "content-type")
    }
    return Response(
        json.dumps(job).encode(), 202, headers={**kept, **applied}, media_type="application/json"
    )


def document(operation: dict[str, Any]) -> None:
    """Describe ``Prefer: wait`` and its 201 on ``POST /api/v1/files`` in the OpenAPI document."""
    parameters = operation.setdefault("parameters", [])
    if any(p.get("name") == "Prefer" for p in parameters):
        return
    parameters.append(
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": (
                f"`wait=N` (RFC 7240): for a file under 1 MB, wait up to N seconds (at most "
                f"{MAX_WAIT_S}) for it to be searchable and answer 201 with the document; "
                "otherwise (or for a larger file) 202 with the job. The answer says "
                "`Preference-Applied: wait=N`."
            ),
            "schema": {"type": "string"},
            "example": "wait=10",
        }
    )
    operation.setdefault("responses", {}).setdefault(
        "201",
        {
            "description": "With `Prefer: wait=N`: the file is already readable, searchable and "
            "in the graph; the body is the document (as `GET /api/v1/documents/{id}`).",
            "headers": {
                "Location": {"schema": {"type": "string"}, "description": "The document."},
                "Preference-Applied": {"schema": {"type": "string"}, "example": "wait=10"},
            },
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "id": "0b8c6a3e9f7d4c21a5e3b1d2c4f60718",
                        "title": "The Curie laboratory",
                        "media_type": "text/markdown",
                        "chunk_count": 2,
                        "status": "stored",
                    },
                }
            },
        },
    )
