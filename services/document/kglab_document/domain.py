"""The document service's domain: documents, chunks, listing queries, cursors, deletion."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kglab_shared.errors import NotFoundError, UnprocessableError
from kglab_shared.pages import Page

#: The parts other services hold and remove after ``document.deleted``.
REMOVABLE_PARTS: tuple[str, ...] = ("vector", "graph")

MAX_PAGE_SIZE = 100


class DocumentStatus(StrEnum):
    STORED = "stored"
    #: Deletion requested: hidden from every read route, kept as a tombstone so that a
    #: redelivered ``document.extracted`` cannot resurrect it and deletion progress is reported.
    DELETING = "deleting"


class SortOrder(StrEnum):
    NEWEST = "-created_at"
    OLDEST = "created_at"
    TITLE = "title"


class DeletionState(StrEnum):
    NOT_REQUESTED = "not_requested"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"


def utc_millis(moment: datetime) -> datetime:
    """UTC, truncated to milliseconds: what BSON dates hold, so cursors round-trip exactly."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class Chunk:
    document_id: str
    owner_id: str
    chunk_id: str
    position: int
    text: str
    heading: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    owner_id: str
    job_id: str
    title: str
    media_type: str
    #: Where it came from: the uploaded file's name or the fetched URL.
    source: str
    #: When the user submitted it (the provenance's ``uploaded_at``), UTC, milliseconds.
    created_at: datetime
    chunk_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    status: DocumentStatus = DocumentStatus.STORED
    deletion_requested_at: datetime | None = None
    #: Part name -> when its service reported it removed.
    removed_parts: dict[str, datetime] = field(default_factory=dict)
    #: SHA-256 of the claim that opens the chunks to the other services (adr/0020).
    claim_digest: str | None = None

    @property
    def is_visible(self) -> bool:
        return self.status is DocumentStatus.STORED


@dataclass(frozen=True, slots=True)
class SaveResult:
    created: bool
    document: Document


@dataclass(frozen=True, slots=True)
class DocumentFilters:
    media_type: str | None = None
    #: Inclusive lower bound on ``created_at``.
    created_from: datetime | None = None
    #: Exclusive upper bound on ``created_at``.
    created_to: datetime | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.created_from is not None:
            object.__setattr__(self, "created_from", utc_millis(self.created_from))
        if self.created_to is not None:
            object.__setattr__(self, "created_to", utc_millis(self.created_to))
        if (
            self.created_from is not None
            and self.created_to is not None
            and self.created_from >= self.created_to
        ):
            raise InvalidQueryError(
                "created_from must be earlier than created_to "
                f"(got {self.created_from.isoformat()} and {self.created_to.isoformat()})."
            )


@dataclass(frozen=True, slots=True)
class DocumentCursor:
    """Where the previous page ended: the sort key and id of its last document."""

    sort: SortOrder
    key: datetime | str
    id: str

    @classmethod
    def after(cls, sort: SortOrder, document: Document) -> DocumentCursor:
        key: datetime | str = document.title if sort is SortOrder.TITLE else document.created_at
        return cls(sort=sort, key=key, id=document.id)

    def encode(self) -> str:
        key = self.key.isoformat() if isinstance(self.key, datetime) else self.key
        return _encode_token({"v": 1, "s": self.sort.value, "k": key, "i": self.id})

    @classmethod
    def decode(cls, token: str, sort: SortOrder) -> DocumentCursor:
        payload = _decode_token(token)
        try:
            cursor_sort = SortOrder(payload["s"])
            key_raw, doc_id = payload["k"], payload["i"]
            if not isinstance(key_raw, str) or not isinstance(doc_id, str):
                raise TypeError
            key: datetime | str = (
                key_raw
                if cursor_sort is SortOrder.TITLE
                else utc_millis(datetime.fromisoformat(key_raw))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCursorError() from exc
        if cursor_sort is not sort:
            raise InvalidCursorError(
                f"This cursor belongs to a listing sorted by '{cursor_sort.value}', "
                f"not '{sort.value}'; keep the same sort while paging, or start again "
                "without a cursor."
            )
        return cls(sort=cursor_sort, key=key, id=doc_id)


@dataclass(frozen=True, slots=True)
class ChunkCursor:
    position: int

    def encode(self) -> str:
        return _encode_token({"v": 1, "p": self.position})

    @classmethod
    def decode(cls, token: str) -> ChunkCursor:
        payload = _decode_token(token)
        position = payload.get("p")
        if not isinstance(position, int) or isinstance(position, bool):
            raise InvalidCursorError()
        return cls(position=position)


def document_page(rows: Sequence[Document], limit: int, sort: SortOrder) -> Page[Document]:
    """Adapters fetch ``limit + 1`` rows; the extra one only says that another page exists."""
    items = list(rows[:limit])
    has_more = len(rows) > limit
    next_cursor = DocumentCursor.after(sort, items[-1]).encode() if has_more and items else None
    return Page(items=items, next_cursor=next_cursor)


def chunk_page(rows: Sequence[Chunk], limit: int) -> Page[Chunk]:
    items = list(rows[:limit])
    has_more = len(rows) > limit
    next_cursor = ChunkCursor(items[-1].position).encode() if has_more and items else None
    return Page(items=items, next_cursor=next_cursor)


@dataclass(frozen=True, slots=True)
class DeletionStatus:
    document_id: str
    state: DeletionState
    requested_at: datetime | None
    #: Part name -> whether it is gone. ``document`` is this service's own part.
    parts: dict[str, bool]


def deletion_status(document: Document) -> DeletionStatus:
    if document.status is DocumentStatus.STORED:
        parts = {"document": False, **dict.fromkeys(REMOVABLE_PARTS, False)}
        return DeletionStatus(document.id, DeletionState.NOT_REQUESTED, None, parts)
    parts = {"document": True, **{p: p in document.removed_parts for p in REMOVABLE_PARTS}}
    state = DeletionState.COMPLETE if all(parts.values()) else DeletionState.IN_PROGRESS
    return DeletionStatus(document.id, state, document.deletion_requested_at, parts)


class InvalidQueryError(UnprocessableError):
    pass


class InvalidCursorError(UnprocessableError):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "The cursor is not one this service issued; pass the next_cursor of the "
            "previous page unchanged, or start again without a cursor."
        )


class DocumentNotFoundError(NotFoundError):
    def __init__(self, document_id: str) -> None:
        super().__init__(f"There is no document {document_id!r} among your documents.")


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidQueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}; got {limit}.")
    return limit


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MAX_TOKEN_CHARS = 2048


def _decode_token(token: str) -> dict[str, Any]:
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise InvalidCursorError()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError() from exc
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise InvalidCursorError()
    return payload


class RebuildStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Announcing stored documents again so the vector and graph services index them anew
    (``make rebuild``, ``POST /api/v1/admin/rebuilds``): the restore path of a lost or
    re-modelled derived store. ``checkpoint`` is the last document announced: a rebuild that
    stopped (a crash, a restart) goes on after it."""

    id: str
    owner_id: str | None
    status: RebuildStatus
    total: int
    published: int
    checkpoint: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


class RebuildNotFoundError(NotFoundError):
    def __init__(self, rebuild_id: str) -> None:
        super().__init__(f"There is no rebuild '{rebuild_id}'.")
