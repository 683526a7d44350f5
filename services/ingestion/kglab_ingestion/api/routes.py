"""Routes of the ingestion service. Every one is scoped to the caller: others' jobs are 404."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, WebSocket, status
from starlette.websockets import WebSocketDisconnect, WebSocketState

from kglab_ingestion.api.deps import IngestionServiceDep, SettingsDep
from kglab_ingestion.api.docs import InvalidRequest, problem_cases
from kglab_ingestion.api.upload_stream import receive_upload
from kglab_ingestion.domain import (
    MAX_PAGE_SIZE,
    ChangeCursor,
    EmptyFileError,
    InfectedFileError,
    InvalidQueryError,
    InvalidUrlError,
    JobStatus,
    MissingFileError,
    ProgressUpdate,
    event_type,
)
from kglab_ingestion.scanning.port import ScannerUnavailableError
from kglab_ingestion.schemas import (
    JOB_ACCEPTED_EXAMPLE,
    JOB_DUPLICATE_EXAMPLE,
    URL_JOB_ACCEPTED_EXAMPLE,
    EventOut,
    EventPageOut,
    JobOut,
    JobPageOut,
    UrlIn,
    event_document_id,
)
from kglab_ingestion.service import IngestionService
from kglab_ingestion.store.port import JobStore, ProgressChannel
from kglab_shared.claims import CLAIM_HEADER
from kglab_shared.errors import (
    DomainError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    documented,
)
from kglab_shared.identity import IDENTITY_HEADER, CurrentIdentity, IdentityCodec
from kglab_shared.logging import get_logger

router = APIRouter(prefix="/api/v1", tags=["ingestion"])
#: For the document service, which holds a document's claim (adr/0020); the gateway routes
#: nothing here.
internal_router = APIRouter(prefix="/internal", tags=["internal"])
ws_router = APIRouter()
_log = get_logger(__name__)

_POLICY_VIOLATION = 1008


def _example(value: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON response with its own example (instead of the model's)."""
    return {"description": description, "content": {"application/json": {"example": value}}}


_SIGNED_OUT = documented(UnauthorizedError, "Sign in first: this route needs a bearer token.")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _SIGNED_OUT,
    404: documented(
        NotFoundError,
        "There is no job 5f0c6b8e9d4a4c1fb1d1c2a3b4c5d6e7 among yours.",
        description="No such job among yours (another user's job answers the same).",
    ),
}
_FILE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _SIGNED_OUT,
    413: documented(
        PayloadTooLargeError,
        "The file is 14.2 MB; the limit is 10 MB.",
        description="The file is larger than the limit (10 MB by default).",
    ),
    415: documented(
        UnsupportedMediaTypeError,
        "The file is named report.pdf but its content is plain text; upload PDF, DOCX, "
        "Markdown, text, JSON or HTML.",
        "The file photo.png has the extension .png, which is not a format we read; upload PDF, "
        "DOCX, Markdown, text, JSON or HTML.",
        description="Not an allowed format, or the content disagrees with the name.",
    ),
    422: problem_cases(
        "No file, an empty file, or a file that carries malware (recorded as a failed job whose "
        "id the problem carries as job_id).",
        (MissingFileError, "Send the file as multipart/form-data in a field named 'file'."),
        (EmptyFileError, "The file is empty; there is nothing to ingest."),
        (
            InfectedFileError,
            "The file invoice.docx contains malware (Eicar-Signature) and was refused.",
        ),
    ),
    503: documented(
        ScannerUnavailableError,
        "The virus scanner is not reachable right now; try again in a minute.",
        description="The virus scanner cannot answer; nothing was stored.",
    ),
}
_URL_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _SIGNED_OUT,
    422: problem_cases(
        "No url, not an http(s) URL, or one that points at a private address.",
        (InvalidRequest, "'url' is required."),
        (InvalidUrlError, "Only http:// and https:// addresses can be fetched."),
        (
            InvalidUrlError,
            "The host intranet.example cannot be fetched. It points to a private, loopback "
            "or otherwise internal network address.",
        ),
    ),
}
_LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _SIGNED_OUT,
    422: problem_cases(
        "A limit out of bounds, an unknown status, or a cursor this service did not issue.",
        (InvalidRequest, "'limit': Input should be less than or equal to 100."),
        (
            InvalidQueryError,
            "The cursor is not one this service issued; start again without it.",
        ),
    ),
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PDF, DOCX, Markdown, plain text, JSON or HTML.",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/files",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    openapi_extra=_UPLOAD_BODY,
    responses={
        202: _example(JOB_ACCEPTED_EXAMPLE, "Accepted: the job that processes the file."),
        200: {
            "model": JobOut,
            **_example(JOB_DUPLICATE_EXAMPLE, "The same file was already submitted: its job."),
        },
        **_FILE_ERRORS,
    },
)
async def upload_file(
    request: Request,
    response: Response,
    identity: CurrentIdentity,
    service: IngestionServiceDep,
    settings: SettingsDep,
) -> JobOut:
    """Upload a file to ingest; answers with the job that processes it."""
    declared = request.headers.get("content-length")
    received = await receive_upload(
        request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=int(declared) if declared and declared.isdigit() else None,
        limit=settings.max_upload_bytes,
        spool_dir=service.spool_dir,
    )
    submission = await service.submit_file(identity.user_id, received)
    if submission.duplicate:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/jobs/{submission.job.id}"
    return JobOut.of(submission.job, duplicate=submission.duplicate)


@router.post(
    "/urls",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={
        202: _example(URL_JOB_ACCEPTED_EXAMPLE, "Accepted: the job that fetches the page."),
        **_URL_ERRORS,
    },
)
async def submit_url(
    body: UrlIn, response: Response, identity: CurrentIdentity, service: IngestionServiceDep
) -> JobOut:
    """Fetch a web page and ingest its article; answers with the job that does it."""
    job = await service.submit_url(identity.user_id, body.url)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobOut.of(job)


_JOB_LIFECYCLE = (
    "A job is `pending` until a worker takes it, then `processing` through its stages: "
    "`extracting` (its text), `storing` (the document and its chunks), `embedding` (search) "
    "and `graphing` (entities and relations). It is `completed` only when the document and "
    "its chunks are readable, search finds it and its entities are in the graph; only then "
    "is `document_id` set. If the document cannot be stored, embedded or graphed the job is "
    "`failed` with a readable `error`, and nothing of the document is kept (what was written "
    "is removed). The WebSocket `/ws/jobs/{job_id}` sends the same fields, `stage` included, "
    "and its message with `final: true` comes only at `completed` or `failed`."
)


@router.get(
    "/jobs",
    response_model=JobPageOut,
    responses=_LIST_ERRORS,
    # Given with the description: the summary would otherwise become the description's line.
    summary="List your ingestion jobs, newest first, one page at a time",
    description=_JOB_LIFECYCLE,
)
async def list_jobs(
    identity: CurrentIdentity,
    service: IngestionServiceDep,
    cursor: Annotated[
        str | None,
        Query(description="The next_cursor of the previous page; omit for the first page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Jobs per page.")] = 20,
    job_status: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this status.")
    ] = None,
) -> JobPageOut:
    """List your ingestion jobs, newest first, one page at a time."""
    page = await service.list_jobs(identity.user_id, status=job_status, limit=limit, cursor=cursor)
    return JobPageOut.of(page, JobOut.of)


@router.get(
    "/events",
    response_model=EventPageOut,
    responses=_LIST_ERRORS,
    summary="Read what happened to your jobs and documents since a cursor (the event feed)",
)
async def list_events(
    identity: CurrentIdentity,
    service: IngestionServiceDep,
    after: Annotated[
        str | None,
        Query(description="The `id` of the last event you read; omit to read from the start."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Events per page.")] = 50,
) -> EventPageOut:
    """Every change to your jobs, oldest first: a job's latest state appears once, after
    anything older. A client that was offline passes the last `id` it read and misses nothing;
    the live version of this feed is the WebSocket `/ws/events`."""
    jobs = await service.changes(identity.user_id, after=after, limit=limit)
    events = [
        EventOut(
            id=ChangeCursor(changed_at=job.updated_at, job_id=job.id).encode(),
            type=event_type(job),
            at=job.updated_at,
            document_id=event_document_id(job),
            job=JobOut.of(job),
        )
        for job in jobs
    ]
    return EventPageOut(events=events, next_cursor=events[-1].id if events else after)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=_ERRORS,
    summary="Get one of your jobs: status, stage, progress, error and the document it produced",
    description=_JOB_LIFECYCLE,
)
async def get_job(job_id: str, identity: CurrentIdentity, service: IngestionServiceDep) -> JobOut:
    """Get one of your jobs: status, stage, progress, error and the document it produced."""
    return JobOut.of(await service.get_job(identity.user_id, job_id))


@ws_router.websocket("/ws/jobs/{job_id}")
async def job_progress(websocket: WebSocket, job_id: str) -> None:
    """Push a job's state now, then every update, then the final state; then close.

    Each message names the job's ``stage``; ``final: true`` comes only once the job is
    completed (document readable, searchable, in the graph) or failed.
    """
    codec: IdentityCodec = websocket.app.state.identity_codec
    service: IngestionService = websocket.app.state.ingestion_service
    jobs: JobStore = websocket.app.state.job_store
    channel: ProgressChannel = websocket.app.state.progress_channel
    heartbeat_s: float = websocket.app.state.settings.ws_heartbeat_s
    token = websocket.headers.get(IDENTITY_HEADER, "")
    try:
        if not token:
            raise DomainError("Sign in first: pass your access token as ?token=.")
        identity = codec.verify(token)
        if identity.is_anonymous:
            raise DomainError("Sign in first: pass your access token as ?token=.")
        await service.get_job(identity.user_id, job_id)
    except DomainError as exc:
        await websocket.accept()
        await websocket.close(code=_POLICY_VIOLATION, reason=exc.detail[:120])
        return

    await websocket.accept()
    # Subscribe before reading the state, so no update falls between the two.
    async with channel.subscribe(job_id) as updates:
        job = await jobs.get(identity.user_id, job_id)
        if job is None:  # deleted meanwhile
            await websocket.close(code=_POLICY_VIOLATION, reason="The job no longer exists.")
            return
        last = ProgressUpdate.of(job)
        await websocket.send_text(last.to_json())
        if last.is_final:
            await websocket.close(code=1000)
            return
        # A pump owns the subscription's iterator: waiting on the queue can time out without
        # cancelling (and so ending) the iterator itself.
        inbox: asyncio.Queue[ProgressUpdate] = asyncio.Queue()
        pump = asyncio.create_task(_pump(updates, inbox))
        disconnected = asyncio.create_task(_wait_disconnect(websocket))
        try:
            while not disconnected.done():
                next_update = asyncio.create_task(inbox.get())
                done, _ = await asyncio.wait(
                    {next_update, disconnected, pump},
                    timeout=heartbeat_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if next_update in done:
                    update = next_update.result()
                else:
                    next_update.cancel()
                    if disconnected in done:
                        return
                    # Nothing heard for a while (a lost message?): the database has the truth.
                    current = await jobs.get(identity.user_id, job_id)
                    if current is None:
                        break
                    update = ProgressUpdate.of(current)
                    if pump.done() and not update.is_final:
                        # The subscription ended (its server went away): poll from here on.
                        await asyncio.sleep(heartbeat_s)
                if (update.status, update.progress) != (last.status, last.progress) or (
                    update.is_final
                ):
                    await websocket.send_text(update.to_json())
                    last = update
                if update.is_final:
                    break
        finally:
            for task in (pump, disconnected):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=1000)


async def _pump(
    updates: AsyncIterator[ProgressUpdate], inbox: asyncio.Queue[ProgressUpdate]
) -> None:
    async for update in updates:
        inbox.put_nowait(update)


async def _wait_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


@internal_router.get("/extractions/{job_id}")
async def get_extraction(
    job_id: str,
    service: IngestionServiceDep,
    claim: Annotated[str | None, Header(alias=CLAIM_HEADER)] = None,
) -> dict[str, Any]:
    """Get a completed job's chunks for the service holding its claim (one page)."""
    return {"items": await service.extraction(job_id, claim), "next_cursor": None}
