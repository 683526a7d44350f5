"""Resumable uploads: the tus 1.0 protocol (core, creation, expiration, termination).

Mounted at ``/api/v1/uploads``:

* ``OPTIONS /api/v1/uploads``: ``Tus-Version``, ``Tus-Extension``, ``Tus-Max-Size``.
* ``POST /api/v1/uploads`` with ``Upload-Length`` and ``Upload-Metadata`` (``filename`` or
  ``name``, base64): 201 and ``Location``. Over the limit: 413.
* ``HEAD /api/v1/uploads/{id}``: ``Upload-Offset``, ``Upload-Length``, ``Cache-Control: no-store``.
* ``PATCH /api/v1/uploads/{id}`` (``Content-Type: application/offset+octet-stream``) appends at
  ``Upload-Offset`` (409 when that is not where the upload is) and answers 204 with the new
  ``Upload-Offset`` and ``Upload-Expires``.
* ``DELETE /api/v1/uploads/{id}``: 204, the upload and its bytes are gone.

When the last byte arrives the upload is handed to the completion callback (it becomes an
ingestion job) and the final PATCH answers 204 with **``Upload-Job-Id``** (the job to follow) and
``Upload-Duplicate: true`` when the file was a duplicate; ``HEAD`` on a finished upload repeats
them. If the callback refuses the file (415, 422 infected, ...) that error is the PATCH's answer
and the upload is discarded; if it fails on our side (503) the upload is kept and a ``PATCH``
with no body at the final offset tries again.

Every answer carries ``Tus-Resumable: 1.0.0``; every error is problem+json. Uploads belong to
their creator: another user's upload answers 404. Expired uploads answer 410 until
:func:`sweep_expired_uploads` removes them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import unicodedata
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from kglab_ingestion.domain import InfectedFileError
from kglab_ingestion.scanning.port import ScannerUnavailableError
from kglab_ingestion.store.uploads import (
    UPLOAD_ID,
    OffsetMismatchError,
    Upload,
    UploadBusyError,
    UploadOverflowError,
    UploadStore,
)
from kglab_shared.errors import (
    ConflictError,
    DomainError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    documented,
    problem,
)
from kglab_shared.identity import CurrentIdentity, Identity
from kglab_shared.logging import get_logger

_log = get_logger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,expiration,termination"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
JOB_ID_HEADER = "Upload-Job-Id"
DUPLICATE_HEADER = "Upload-Duplicate"
MB = 1024 * 1024

#: Called once per upload with (caller, file, file name, size) when the last byte is in;
#: returns the job it became (a JSON object with at least ``job_id``).
OnUploadComplete = Callable[[Identity, Path, str, int], Awaitable[dict[str, Any]]]
Clock = Callable[[], datetime]


class TusSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_path: str = "/api/v1/uploads"
    max_size_bytes: int = Field(default=50 * MB, gt=0)
    #: An upload untouched this long expires (each PATCH moves the expiry forward).
    expiry_s: float = Field(default=24 * 3600.0, gt=0)
    #: Unfinished uploads one user may have at a time (each may hold up to max_size_bytes).
    max_unfinished_per_user: int = Field(default=20, ge=1)
    max_metadata_bytes: int = Field(default=4096, ge=64)
    #: How often :func:`run_upload_sweeper` removes expired uploads.
    sweep_interval_s: float = Field(default=300.0, gt=0)


class TusError(DomainError):
    """A tus protocol error with its own status (412, 410, 400)."""

    def __init__(self, status: int, title: str, detail: str, **headers: str) -> None:
        super().__init__(detail, headers=headers or None)
        self.status = status
        self.title = title
        self.code = title.lower().replace(" ", "_")


class _PreconditionFailed(DomainError):
    """For the OpenAPI examples: what :func:`_require_tus` raises (a :class:`TusError`)."""

    status, title, code = 412, "Precondition failed", "precondition_failed"


class _Gone(DomainError):
    """For the OpenAPI examples: an expired upload (a :class:`TusError`)."""

    status, title, code = 410, "Gone", "gone"


_ERRORS: dict[str, dict[str, Any]] = {
    "401": documented(UnauthorizedError, "Sign in first: this route needs a bearer token."),
    "404": documented(
        NotFoundError,
        "There is no upload with this id.",
        description="No such upload among yours (another user's upload answers the same).",
    ),
    "409": documented(
        ConflictError,
        "The upload is at byte 5242880, not 0: ask for its offset with HEAD and resume from there.",
        description="The offset sent is not where the upload is, or another request is "
        "writing to it.",
    ),
    "410": documented(
        _Gone,
        "This upload expired at Wed, 04 Mar 2026 10:12:05 GMT; start a new one.",
        description="The upload expired; start a new one.",
    ),
    "412": documented(
        _PreconditionFailed,
        f"This server speaks tus {TUS_VERSION}: send 'Tus-Resumable: {TUS_VERSION}'.",
        description="The request does not speak tus 1.0.0 (the Tus-Resumable header).",
    ),
}


def _errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The shared error responses a tus route answers with."""
    return {code: _ERRORS[code] for code in codes}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _TusRoute(APIRoute):
    """Every answer of the tus routes, errors included, carries ``Tus-Resumable``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except DomainError as exc:
                response = problem(
                    exc.status,
                    exc.detail,
                    title=exc.title,
                    code=exc.code,
                    instance=request.url.path,
                    headers=exc.headers,
                    **exc.extra,
                )
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


def create_tus_router(
    store: UploadStore,
    settings: TusSettings,
    on_complete: OnUploadComplete,
    *,
    clock: Clock = _utcnow,
) -> APIRouter:
    """The tus 1.0 routes over ``store``; ``on_complete`` turns a finished upload into a job."""
    router = APIRouter(prefix=settings.base_path, tags=["uploads"], route_class=_TusRoute)
    expiry = timedelta(seconds=settings.expiry_s)

    async def owned(identity: Identity, upload_id: str) -> Upload:
        upload = await store.get(upload_id) if UPLOAD_ID.match(upload_id) else None
        if upload is None or upload.owner_id != identity.user_id:
            raise NotFoundError("There is no upload with this id.")
        if upload.expired(clock()):
            raise TusError(
                410,
                "Gone",
                f"This upload expired at {_http_date(upload.expires_at)}; start a new one.",
            )
        return upload

    @router.options("", status_code=204, response_class=Response, responses=_errors("401"))
    async def describe_uploads(identity: CurrentIdentity) -> Response:
        """Describe the resumable upload protocol this server speaks."""
        return Response(
            status_code=204,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(settings.max_size_bytes),
            },
        )

    @router.post(
        "",
        status_code=201,
        response_class=Response,
        responses={
            **_errors("401", "412"),
            400: documented(
                TusError,
                "Upload-Length must be a whole number of bytes.",
                "Name the file: Upload-Metadata needs a 'filename' entry (base64-encoded).",
                description="No Upload-Length, or Upload-Metadata without a file name.",
            ),
            413: documented(
                PayloadTooLargeError,
                "The file is 64 MB; the limit for resumable uploads is 50 MB.",
                description="The declared length is over the limit (50 MB by default).",
            ),
            429: documented(
                RateLimitedError,
                "You have 20 unfinished uploads; finish or cancel one before starting another.",
                description="Too many unfinished uploads of yours.",
            ),
        },
    )
    async def create_upload(request: Request, identity: CurrentIdentity) -> Response:
        """Start a resumable upload (tus creation)."""
        _require_tus(request)
        if "upload-defer-length" in request.headers:
            raise TusError(400, "Bad request", "Say the file's size up front: send Upload-Length.")
        length = _non_negative_int(request, "Upload-Length")
        if length > settings.max_size_bytes:
            raise PayloadTooLargeError(
                f"The file is {_mb(length)}; the limit for resumable uploads is "
                f"{_mb(settings.max_size_bytes)}.",
                headers={"Tus-Max-Size": str(settings.max_size_bytes)},
            )
        raw_metadata = request.headers.get("upload-metadata", "")
        if len(raw_metadata.encode()) > settings.max_metadata_bytes:
            raise TusError(400, "Bad request", "Upload-Metadata is too long.")
        filename = _filename(parse_metadata(raw_metadata))
        now = clock()
        if await store.count_unfinished(identity.user_id, now) >= settings.max_unfinished_per_user:
            raise RateLimitedError(
                f"You have {settings.max_unfinished_per_user} unfinished uploads; finish or "
                "cancel one before starting another.",
                retry_after_s=60,
            )
        upload = await store.create(
            owner_id=identity.user_id,
            length=length,
            filename=filename,
            raw_metadata=raw_metadata,
            created_at=now,
            expires_at=now + expiry,
        )
        headers = {
            "Location": f"{request.url.path.rstrip('/')}/{upload.id}",
            "Upload-Offset": "0",
            "Upload-Expires": _http_date(upload.expires_at),
        }
        if length == 0:  # an empty file is complete on creation
            async with store.exclusive(upload.id):
                upload = await _complete(store, on_complete, identity, upload)
            headers.update(_result_headers(upload))
        _log.info("upload_created", upload_id=upload.id, length=length)
        return Response(status_code=201, headers=headers)

    @router.head(
        "/{upload_id}", response_class=Response, responses=_errors("401", "404", "410", "412")
    )
    async def upload_offset(
        request: Request, upload_id: str, identity: CurrentIdentity
    ) -> Response:
        """Tell how many bytes of the upload have arrived (to resume from there)."""
        _require_tus(request)
        upload = await owned(identity, upload_id)
        headers = {
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": _http_date(upload.expires_at),
            "Cache-Control": "no-store",
        }
        if upload.raw_metadata:
            headers["Upload-Metadata"] = upload.raw_metadata
        headers.update(_result_headers(upload))
        return Response(status_code=200, headers=headers)

    @router.patch(
        "/{upload_id}",
        status_code=204,
        response_class=Response,
        responses={
            **_errors("401", "404", "409", "410", "412"),
            400: documented(
                TusError,
                "The connection broke while the bytes arrived; ask for the offset with HEAD "
                "and resume from there.",
                description="The bytes stopped arriving (what came is kept), or a header is "
                "malformed.",
            ),
            413: documented(
                PayloadTooLargeError,
                "The request carries more bytes than the upload has left (1048576 of "
                "52428800); nothing of it was kept.",
                description="More bytes than the upload has left.",
            ),
            415: documented(
                UnsupportedMediaTypeError,
                f"Send the bytes with Content-Type: {OFFSET_CONTENT_TYPE}.",
                "The file is named report.pdf but its content is plain text; upload PDF, "
                "DOCX, Markdown, text, JSON or HTML.",
                description="Not application/offset+octet-stream, or (on the last PATCH) a "
                "finished file of a type that is not accepted.",
            ),
            422: documented(
                InfectedFileError,
                "The file invoice.docx contains malware (Eicar-Signature) and was refused.",
                description="The finished file was refused (malware); the upload is discarded.",
            ),
            503: documented(
                ScannerUnavailableError,
                "The virus scanner is not reachable right now; try again in a minute.",
                description="The finished file could not be scanned yet; the upload is kept, "
                "so a PATCH with no body at the final offset tries again.",
            ),
        },
    )
    async def append_to_upload(
        request: Request, upload_id: str, identity: CurrentIdentity
    ) -> Response:
        """Append bytes to the upload at the offset it has reached."""
        _require_tus(request)
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaTypeError(
                f"Send the bytes with Content-Type: {OFFSET_CONTENT_TYPE}."
            )
        offset = _non_negative_int(request, "Upload-Offset")
        upload = await owned(identity, upload_id)
        try:
            async with store.exclusive(upload_id):
                upload = await owned(identity, upload_id)  # as it is now that we hold it
                if offset != upload.offset:
                    raise _offset_conflict(upload.offset, offset)
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > upload.length - upload.offset:
                    raise _overflow(upload)
                if not upload.received_all:
                    try:
                        upload = await store.append(
                            upload_id, offset, request.stream(), expires_at=clock() + expiry
                        )
                    except OffsetMismatchError as exc:
                        raise _offset_conflict(exc.current, offset) from None
                    except UploadOverflowError:
                        raise _overflow(upload) from None
                    except ClientDisconnect:
                        # What arrived is kept; the client resumes from the offset HEAD reports.
                        _log.info("upload_interrupted", upload_id=upload_id)
                        raise TusError(
                            400,
                            "Bad request",
                            "The connection broke while the bytes arrived; ask for the offset "
                            "with HEAD and resume from there.",
                        ) from None
                if upload.received_all and not upload.finished:
                    upload = await _complete(store, on_complete, identity, upload)
        except UploadBusyError:
            raise ConflictError(
                "Another request is writing to this upload right now; ask for its offset "
                "with HEAD and resume from there."
            ) from None
        headers = {
            "Upload-Offset": str(upload.offset),
            "Upload-Expires": _http_date(upload.expires_at),
        }
        headers.update(_result_headers(upload))
        return Response(status_code=204, headers=headers)

    @router.delete(
        "/{upload_id}",
        status_code=204,
        response_class=Response,
        responses={
            **_errors("401", "404", "410", "412"),
            409: documented(
                ConflictError,
                "The upload is receiving bytes right now; cancel it once that request ends.",
                description="A PATCH is writing to the upload at this moment.",
            ),
        },
    )
    async def cancel_upload(
        request: Request, upload_id: str, identity: CurrentIdentity
    ) -> Response:
        """Cancel the upload and discard its bytes (tus termination)."""
        _require_tus(request)
        await owned(identity, upload_id)
        try:
            async with store.exclusive(upload_id):
                await store.delete(upload_id)
        except UploadBusyError:
            raise ConflictError(
                "The upload is receiving bytes right now; cancel it once that request ends."
            ) from None
        return Response(status_code=204)

    return router


async def _complete(
    store: UploadStore, on_complete: OnUploadComplete, identity: Identity, upload: Upload
) -> Upload:
    """Hand the received file over; called with the upload held exclusively."""
    try:
        result = await on_complete(
            identity, store.data_path(upload.id), upload.filename, upload.length
        )
    except DomainError as exc:
        if exc.status < 500:
            # The file itself was refused (type, virus, ...): sending it again cannot help.
            await store.delete(upload.id)
        raise
    _log.info("upload_completed", upload_id=upload.id, job_id=result.get("job_id"))
    return await store.finish(upload.id, result)


async def sweep_expired_uploads(store: UploadStore, *, now: datetime | None = None) -> int:
    """Remove every expired upload not being written right now; return how many went."""
    removed = 0
    for upload in await store.expired(now or _utcnow()):
        with contextlib.suppress(UploadBusyError):
            async with store.exclusive(upload.id):
                if await store.delete(upload.id):
                    removed += 1
    if removed:
        _log.info("uploads_expired", count=removed)
    return removed


async def run_upload_sweeper(store: UploadStore, settings: TusSettings) -> None:
    """Sweep expired uploads every ``sweep_interval_s`` until cancelled (start it in lifespan)."""
    while True:
        try:
            await sweep_expired_uploads(store)
        except Exception:  # a failed sweep must not end the loop; the next one retries
            _log.exception("upload_sweep_failed")
        await asyncio.sleep(settings.sweep_interval_s)


# ---------------------------------------------------------------------- protocol details


def parse_metadata(raw: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (the value may be absent)."""
    metadata: dict[str, str] = {}
    if not raw.strip():
        return metadata
    for pair in raw.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in metadata:
            raise TusError(400, "Bad request", "Upload-Metadata is malformed.")
        value = ""
        if len(parts) == 2:
            try:
                value = base64.b64decode(parts[1], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise TusError(
                    400, "Bad request", f"Upload-Metadata '{key}' is not base64-encoded UTF-8."
                ) from None
        metadata[key] = value
    return metadata


_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_filename(name: str) -> str:
    """The last path component, without control or path characters, at most 255 bytes."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip().lstrip(".")
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    # Shorten the stem, not the extension the file type is checked against.
    while len(name.encode()) > 255 and stem:
        stem = stem[:-1]
        name = f"{stem}.{suffix}" if suffix else stem
    return name


def _filename(metadata: dict[str, str]) -> str:
    name = safe_filename(metadata.get("filename") or metadata.get("name") or "")
    if not name:
        raise TusError(
            400,
            "Bad request",
            "Name the file: Upload-Metadata needs a 'filename' entry (base64-encoded).",
        )
    return name


def _require_tus(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise TusError(
            412,
            "Precondition failed",
            f"This server speaks tus {TUS_VERSION}: send 'Tus-Resumable: {TUS_VERSION}'.",
            **{"Tus-Version": TUS_VERSION},
        )


def _non_negative_int(request: Request, header: str) -> int:
    value = request.headers.get(header.lower(), "").strip()
    if not value.isdigit() or len(value) > 18:
        raise TusError(400, "Bad request", f"{header} must be a whole number of bytes.")
    return int(value)


def _offset_conflict(current: int, sent: int) -> ConflictError:
    return ConflictError(
        f"The upload is at byte {current}, not {sent}: ask for its offset with HEAD and "
        "resume from there.",
        headers={"Upload-Offset": str(current)},
    )


def _overflow(upload: Upload) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request carries more bytes than the upload has left "
        f"({upload.length - upload.offset} of {upload.length}); nothing of it was kept."
    )


def _result_headers(upload: Upload) -> dict[str, str]:
    if upload.result is None:
        return {}
    headers = {}
    job_id = upload.result.get("job_id")
    if job_id is not None:
        headers[JOB_ID_HEADER] = str(job_id)
    if upload.result.get("duplicate"):
        headers[DUPLICATE_HEADER] = "true"
    return headers


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB" if size % MB else f"{size // MB} MB"
