"""Webhook routes: a user's endpoints, secret rotation, deliveries and replays (adr/0028).
Another user's endpoint or delivery is 404, as on every route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status

from kglab_ingestion.api.docs import InvalidRequest, problem_cases
from kglab_ingestion.domain import MAX_PAGE_SIZE, InvalidQueryError
from kglab_ingestion.webhooks.domain import (
    DeliveryStatus,
    InvalidWebhookError,
    TooManyEndpointsError,
)
from kglab_ingestion.webhooks.schemas import (
    RotateSecretIn,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookEndpointCreatedOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPageOut,
    WebhookEndpointPatch,
)
from kglab_ingestion.webhooks.service import WebhookService
from kglab_shared.errors import NotFoundError, UnauthorizedError, documented
from kglab_shared.identity import CurrentIdentity


async def _webhook_service(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhook_service
    return service


WebhookServiceDep = Annotated[WebhookService, Depends(_webhook_service)]
router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

_SIGNED_OUT = documented(UnauthorizedError, "Sign in first: this route needs a bearer token.")
_NOT_FOUND = documented(
    NotFoundError,
    "You have no webhook endpoint with the id 9b2f6a0c1d7e4f38a5c2b1e0d9f8a7c6.",
    description="No such endpoint (or delivery) among yours; another user's answers the same.",
)
_ENDPOINT_ERRORS: dict[int | str, dict[str, Any]] = {401: _SIGNED_OUT, 404: _NOT_FOUND}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ENDPOINT_ERRORS,
    422: problem_cases(
        "A URL that cannot receive webhooks, an unknown event type, or too many endpoints.",
        (
            InvalidWebhookError,
            "This URL cannot receive webhooks: The address 127.0.0.1 cannot be fetched. It "
            "points to a private, loopback or otherwise internal network address.",
        ),
        (
            InvalidWebhookError,
            "Unknown event type 'job.done'; the event types are job.pending, job.processing, "
            "job.completed, job.failed, document.deleted.",
        ),
        (
            TooManyEndpointsError,
            "You already have 16 webhook endpoints, the most one account may have; delete one "
            "you no longer use (or subscribe an existing one to more events).",
        ),
    ),
}
_LIST_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ENDPOINT_ERRORS,
    422: problem_cases(
        "A limit out of bounds or a cursor this service did not issue.",
        (InvalidRequest, "'limit': Input should be less than or equal to 100."),
        (InvalidQueryError, "The cursor is not one this service issued; start again without it."),
    ),
}
_SIGNING = (
    "Each delivery is a `POST` of a JSON event (`id`, `type`, `at`, `job`) with the headers "
    "`Kglab-Webhook-Id` (the delivery, the same on every retry), `Kglab-Event-Id`, "
    "`Kglab-Event-Type` and `Kglab-Signature: t=<unix time>,v1=<hex>`: HMAC-SHA256 with the "
    "secret over `{t}.{body}` (during a rotation's overlap a second `v1`, from the old secret). "
    "A 2xx answer within 10 s is a success; anything else is retried with exponential backoff "
    "for about 28 hours, then the delivery is `failed`."
)
_Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]
_Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointCreatedOut,
    responses=_WRITE_ERRORS,
    summary="Register a webhook endpoint; its signing secret is shown this once",
    description=_SIGNING,
)
async def create_webhook(
    body: WebhookEndpointIn, identity: CurrentIdentity, service: WebhookServiceDep
) -> WebhookEndpointCreatedOut:
    """Register a webhook endpoint; its signing secret is shown this once."""
    created = await service.create(
        identity.user_id, url=body.url, events=body.events, description=body.description
    )
    return WebhookEndpointCreatedOut.of_new(created)


@router.get("", response_model=WebhookEndpointPageOut, responses=_LIST_ERRORS)
async def list_webhooks(
    identity: CurrentIdentity,
    service: WebhookServiceDep,
    limit: _Limit = 50,
    cursor: _Cursor = None,
) -> WebhookEndpointPageOut:
    """List your webhook endpoints, newest first."""
    page = await service.list_endpoints(identity.user_id, limit=limit, cursor=cursor)
    return WebhookEndpointPageOut.of(page, WebhookEndpointOut.of)


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut, responses=_ENDPOINT_ERRORS)
async def get_webhook(
    endpoint_id: str, identity: CurrentIdentity, service: WebhookServiceDep
) -> WebhookEndpointOut:
    """Get one of your webhook endpoints (never its secret)."""
    return WebhookEndpointOut.of(await service.get(identity.user_id, endpoint_id))


@router.patch("/{endpoint_id}", response_model=WebhookEndpointOut, responses=_WRITE_ERRORS)
async def update_webhook(
    endpoint_id: str,
    body: WebhookEndpointPatch,
    identity: CurrentIdentity,
    service: WebhookServiceDep,
) -> WebhookEndpointOut:
    """Change an endpoint's URL, events or description, or disable and enable it."""
    updated = await service.update(
        identity.user_id,
        endpoint_id,
        url=body.url,
        events=body.events,
        description=body.description,
        enabled=body.enabled,
        fields=frozenset(body.model_fields_set),
    )
    return WebhookEndpointOut.of(updated)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ENDPOINT_ERRORS)
async def delete_webhook(
    endpoint_id: str, identity: CurrentIdentity, service: WebhookServiceDep
) -> Response:
    """Delete an endpoint with its deliveries; nothing more is sent to it."""
    await service.delete(identity.user_id, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointCreatedOut,
    responses=_WRITE_ERRORS,
)
async def rotate_webhook_secret(
    endpoint_id: str,
    identity: CurrentIdentity,
    service: WebhookServiceDep,
    body: Annotated[
        RotateSecretIn | None,
        Body(
            openapi_examples={
                "hour": {
                    "summary": "the old secret signs for one more hour",
                    "value": {"overlap_seconds": 3600},
                },
                "default": {"summary": "no body: a day of overlap", "value": {}},
            }
        ),
    ] = None,
) -> WebhookEndpointCreatedOut:
    """Make a new signing secret (shown this once); the old one also signs during the overlap."""
    overlap = body.overlap_seconds if body is not None else None
    rotated = await service.rotate_secret(identity.user_id, endpoint_id, overlap_s=overlap)
    return WebhookEndpointCreatedOut.of_new(rotated)


@router.get(
    "/{endpoint_id}/deliveries", response_model=WebhookDeliveryPageOut, responses=_LIST_ERRORS
)
async def list_webhook_deliveries(
    endpoint_id: str,
    identity: CurrentIdentity,
    service: WebhookServiceDep,
    delivery_status: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in it.")
    ] = None,
    limit: _Limit = 50,
    cursor: _Cursor = None,
) -> WebhookDeliveryPageOut:
    """List an endpoint's deliveries, newest first, each with its attempts."""
    page = await service.deliveries(
        identity.user_id, endpoint_id, status=delivery_status, limit=limit, cursor=cursor
    )
    return WebhookDeliveryPageOut.of(page, WebhookDeliveryOut.of)


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDeliveryOut,
    responses=_ENDPOINT_ERRORS,
)
async def replay_webhook_delivery(
    endpoint_id: str, delivery_id: str, identity: CurrentIdentity, service: WebhookServiceDep
) -> WebhookDeliveryOut:
    """Send a delivery's event again, now, as a new delivery with its own attempts."""
    replayed = await service.replay(identity.user_id, endpoint_id, delivery_id)
    return WebhookDeliveryOut.of(replayed)
