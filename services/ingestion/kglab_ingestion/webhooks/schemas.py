"""Webhook request and response shapes (what the OpenAPI document shows), and the body each
delivery sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from kglab_ingestion.domain import IngestionJob
from kglab_ingestion.schemas import EVENT_DOCUMENT_DOC, JOB_EXAMPLE, JobOut, event_document_id
from kglab_ingestion.webhooks.domain import (
    EVENT_TYPES,
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from kglab_ingestion.webhooks.service import EndpointWithSecret
from kglab_shared.pages import PageOut

_ENDPOINT_ID = "9b2f6a0c1d7e4f38a5c2b1e0d9f8a7c6"
_DELIVERY_ID = "4c1e8f2a9b3d4e6f8a0b2c4d6e8f0a1b"
_EVENT_ID = "evt_1f3a5c7e9b2d4f6a8c0e2b4d"
_CREATED = "2026-12-07T09:30:00Z"
_EVENTS_DOC = ", ".join(f"`{e}`" for e in EVENT_TYPES)

ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": _ENDPOINT_ID,
    "url": "https://hooks.example.org/kglab",
    "description": "Tell the search index when a document is ready",
    "events": ["job.completed", "job.failed", "document.deleted"],
    "enabled": True,
    "created_at": _CREATED,
    "updated_at": _CREATED,
    "previous_secret_expires_at": None,
}
SECRET_EXAMPLE = "whsec_Jx0pA4v9bQ2mZk7Yt1cR8sN3uW6eL5dH0fG2iK4oP9q"
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": _DELIVERY_ID,
    "event_id": _EVENT_ID,
    "event_type": "job.completed",
    "status": "pending",
    "attempt_count": 1,
    "next_attempt_at": "2026-12-07T09:32:31Z",
    "created_at": "2026-12-07T09:30:01Z",
    "replay_of": None,
    "attempts": [
        {
            "number": 1,
            "at": "2026-12-07T09:30:02Z",
            "status_code": 500,
            "error": "The endpoint answered HTTP 500.",
            "duration_ms": 41,
        }
    ],
}


#: An event type, shown as an enum in the OpenAPI document so generated clients check it (the
#: service still answers an unknown one with a sentence naming it).
EventName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)})]


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.org/kglab",
                    "events": ["job.completed", "job.failed", "document.deleted"],
                    "description": "Tell the search index when a document is ready",
                }
            ]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="An http or https URL on a public address (as for URL ingestion).",
    )
    events: list[EventName] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description=f"Any of {_EVENTS_DOC}."
    )
    description: str | None = Field(default=None, max_length=500)


class WebhookEndpointPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled": False}, {"events": ["job.failed"]}]},
    )

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None,
        description="false: no new deliveries, and pending ones wait until it is true again.",
    )


class RotateSecretIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"overlap_seconds": 3600}]}
    )

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        description="How long the old secret keeps signing next to the new one (default "
        "86400, a day; 0 stops it at once).",
    )


class WebhookEndpointOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENDPOINT_EXAMPLE]})

    id: str
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the rotated-out secret also signs; null when only one does."
    )

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            events=list(endpoint.events),
            enabled=endpoint.enabled,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
        )


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**ENDPOINT_EXAMPLE, "secret": SECRET_EXAMPLE}]}
    )

    secret: str = Field(
        description="The signing secret: shown this once, keep it. Verify each delivery's "
        "`Kglab-Signature` with it."
    )

    @classmethod
    def of_new(cls, created: EndpointWithSecret) -> WebhookEndpointCreatedOut:
        return cls(**WebhookEndpointOut.of(created.endpoint).model_dump(), secret=created.secret)


class WebhookEndpointPageOut(PageOut[WebhookEndpointOut]):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [ENDPOINT_EXAMPLE], "next_cursor": None}]}
    )


class DeliveryAttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None = Field(description="The endpoint's HTTP status; null: no answer.")
    error: str | None
    duration_ms: int

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> DeliveryAttemptOut:
        return cls(
            number=attempt.number,
            at=attempt.at,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
        )


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})

    id: str = Field(description="Sent as `Kglab-Webhook-Id`; the same on every attempt.")
    event_id: str = Field(description="Sent as `Kglab-Event-Id`; the same on a replay.")
    event_type: str
    status: DeliveryStatus = Field(
        description="`pending` (an attempt is due at `next_attempt_at`), `succeeded` (a 2xx "
        "answer), `failed` (every attempt of the retry schedule failed)."
    )
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    replay_of: str | None = Field(description="The delivery this one replays, if it does.")
    attempts: list[DeliveryAttemptOut]

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> WebhookDeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at,
            created_at=delivery.created_at,
            replay_of=delivery.replay_of,
            attempts=[DeliveryAttemptOut.of(a) for a in delivery.attempts],
        )


class WebhookDeliveryPageOut(PageOut[WebhookDeliveryOut]):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [DELIVERY_EXAMPLE], "next_cursor": None}]}
    )


class WebhookEventOut(BaseModel):
    """The JSON body of every delivery (the event feed's shape with the event's own id)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": _EVENT_ID, "type": "job.completed", "at": _CREATED, "job": JOB_EXAMPLE}
            ]
        }
    )

    id: str = Field(description="The event's id (also `Kglab-Event-Id`): dedupe on it.")
    type: str = Field(description=f"One of {_EVENTS_DOC}.")
    at: datetime = Field(description="When the change happened.")
    document_id: str | None = Field(default=None, description=EVENT_DOCUMENT_DOC)
    job: JobOut

    @classmethod
    def of(cls, job: IngestionJob, kind: str, event_id: str) -> WebhookEventOut:
        return cls(
            id=event_id,
            type=kind,
            at=job.updated_at,
            document_id=event_document_id(job),
            job=JobOut.of(job),
        )


def render_event(job: IngestionJob, kind: str, event_id: str) -> str:
    """The exact body every attempt of an event's deliveries sends."""
    return WebhookEventOut.of(job, kind, event_id).model_dump_json()
