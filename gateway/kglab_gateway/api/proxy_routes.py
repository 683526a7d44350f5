"""The catch-all route that authenticates, limits and forwards every public API call.

One proxied request, top to bottom: :func:`forward` checks the caller (policy), builds the
headers and body to send, ``UpstreamPool.send`` sends them over the service's httpx transport
(retries, breaker, timeouts; ``kglab_gateway.proxy``), and the answer is relayed: a small one
read whole here, a large or unsized one streamed as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Scope

from kglab_gateway import idempotency, prefer
from kglab_gateway.config import GatewaySettings
from kglab_gateway.policy import GatewayPolicy
from kglab_gateway.proxy import HOP_BY_HOP, UpstreamPool, relayed_headers, stream_body
from kglab_gateway.routing import UPLOAD_PATHS, upstream_for
from kglab_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from kglab_shared.errors import NotFoundError, PayloadTooLargeError
from kglab_shared.identity import IDENTITY_HEADER, Identity
from kglab_shared.tracing import current_trace_headers, tracing_configured

router = APIRouter()
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_STRIPPED_REQUEST_HEADERS = frozenset(
    name.encode()
    for name in HOP_BY_HOP
    | {
        IDENTITY_HEADER.lower(),
        "authorization",
        "cookie",
        REQUEST_ID_HEADER.lower(),
        "x-forwarded-for",
    }
)


#: Answers up to this size (declared by the service) are read whole and sent in one message;
#: larger or unsized ones are streamed, watching for the client going away.
_WHOLE_BODY_BYTES = 256 * 1024


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


async def _limited_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLargeError(
                f"The request body is larger than the limit of {_megabytes(limit)}."
            )
        yield chunk


@router.api_route("/api/{rest:path}", methods=_METHODS, include_in_schema=False)
@router.api_route("/.well-known/jwks.json", methods=["GET"], include_in_schema=False)
async def forward(request: Request) -> Response:
    """Authenticate, rate-limit and forward a call to the service that owns its path."""
    path: str = request.scope["path"]
    service = upstream_for(path)
    if service is None:
        raise NotFoundError(f"There is nothing at {path}.")
    policy: GatewayPolicy = request.app.state.policy
    settings: GatewaySettings = request.app.state.settings
    identity = await policy.authenticate(request)
    policy.authorize(request, identity)
    await policy.enforce_rate_limits(request, identity)
    key = None
    if request.method == "POST" and idempotency.ROUTES.match(path) and not identity.is_anonymous:
        key = idempotency.client_key(request.headers.get(idempotency.HEADER))

    limit = settings.max_upload_bytes if UPLOAD_PATHS.match(path) else settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        what = "file" if UPLOAD_PATHS.match(path) else "request body"
        raise PayloadTooLargeError(
            f"The {what} is {_megabytes(int(declared))}; the limit is {_megabytes(limit)}."
        )

    headers = [
        (name, value)
        for name, value in request.headers.raw
        if name not in _STRIPPED_REQUEST_HEADERS
    ]
    added = {
        IDENTITY_HEADER: policy.forwarded_identity(identity),
        REQUEST_ID_HEADER: get_correlation_id() or "",
        "X-Forwarded-For": policy.client_ip(request),
    }
    if tracing_configured() or "traceparent" in request.headers:
        # Otherwise no trace context is current (see incoming_request_context): none to send.
        added.update(current_trace_headers())

    fingerprint: idempotency.Fingerprint | None = None
    if key is not None:
        store: idempotency.IdempotencyStore = request.app.state.idempotency
        client_key = idempotency.scoped(identity.user_id, key)
        fingerprint = idempotency.Fingerprint(
            "POST", _target(request.scope).decode("latin-1"), request.headers.get("content-type")
        )
        kept = await _claim_or_kept(store, client_key, settings.upstream_timeout_s * 3)
        if kept is not None:
            digest = await fingerprint.consume(_limited_body(request, limit))
            return _replay(idempotency.check_replay(kept, digest))

    body: bytes | AsyncIterator[bytes] | None
    if request.method in ("GET", "HEAD", "DELETE", "OPTIONS") and not declared:
        body = None
    elif UPLOAD_PATHS.match(path):
        body = _limited_body(request, limit)
        if fingerprint is not None:
            body = fingerprint.through(body)
        if declared is not None and declared.isdigit():
            # Streamed on, but with its length: the service can name the size in a 413, and
            # the upstream request is not chunked.
            added["content-length"] = declared
    else:
        raw = bytearray()
        try:
            async for chunk in _limited_body(request, limit):
                raw.extend(chunk)
        except BaseException:
            if key is not None:  # a body too large or a client gone: the key is free again
                await store.release(client_key.name)
            raise
        body = bytes(raw)
        if fingerprint is not None:
            fingerprint.update(body)
    headers.extend((name.encode(), value.encode("latin-1")) for name, value in added.items())

    wait_s = prefer.requested_wait(request.headers) if path == prefer.PATH else None
    if key is None:
        return await _answer(request, service, path, headers, body, identity, wait_s)
    # The key is claimed: keep the answer for retries, or free the key if there is none to keep.
    try:
        response = await _answer(request, service, path, headers, body, identity, wait_s)
    except BaseException:
        await store.release(client_key.name)
        raise
    assert fingerprint is not None
    if response.status_code >= 500 or isinstance(response, StreamingResponse):
        await store.release(client_key.name)
    else:
        kept_answer = idempotency.Kept(
            fingerprint=fingerprint.hexdigest(),
            status=response.status_code,
            headers=idempotency.replayable_headers(response.raw_headers),
            body=bytes(response.body),
        )
        await store.keep(client_key.name, kept_answer.seal(client_key.secret), idempotency.KEPT_S)
    return response


async def _claim_or_kept(
    store: idempotency.IdempotencyStore, key: idempotency.ClientKey, lease_s: float
) -> idempotency.Kept | None:
    """Claim ``key`` for this request (None), or the answer of the request that has it, once
    that one finishes."""
    while True:
        if await store.read(key.name) is None:
            if await store.claim(key.name, lease_s):
                return None
            continue
        kept = await idempotency.wait_for_answer(store, key, timeout_s=lease_s)
        if kept is not None:
            return kept


def _replay(kept: idempotency.Kept) -> Response:
    response = Response(kept.body, kept.status)
    response.raw_headers = [
        *((n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in kept.headers),
        (idempotency.REPLAYED_HEADER.lower().encode(), b"true"),
        (b"content-length", str(len(kept.body)).encode()),
    ]
    return response


async def _answer(
    request: Request,
    service: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | AsyncIterator[bytes] | None,
    identity: Identity,
    wait_s: int | None,
) -> Response:
    """The service's answer, or, for a small upload whose client prefers to wait, the document
    once it is searchable (``kglab_gateway.prefer``)."""
    response = await _relay(request, service, path, headers, body)
    if wait_s is None or response.status_code != 202 or isinstance(response, StreamingResponse):
        return response
    policy: GatewayPolicy = request.app.state.policy
    return await prefer.answer_when_ready(
        response, wait_s, identity, policy.forwarded_identity(identity), request.app.state.upstreams
    )


async def _relay(
    request: Request,
    service: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | AsyncIterator[bytes] | None,
) -> Response:
    """Send the call to ``service`` and relay its answer."""
    policy: GatewayPolicy = request.app.state.policy
    pool: UpstreamPool = request.app.state.upstreams
    upstream = await pool.send(
        service, request.method, _target(request.scope), headers=headers, body=body
    )
    answer_headers = relayed_headers(upstream)
    answer_headers.extend(
        (name.lower().encode(), value.encode("latin-1"))
        for name, value in policy.version_headers(path).items()
    )
    size = upstream.headers.get("content-length", "")
    if size.isdigit() and int(size) <= _WHOLE_BODY_BYTES:
        # Read here, so a connection breaking mid-answer is a problem+json from the error
        # handlers; sent in one message.
        response = Response(await pool.read_whole(service, upstream), upstream.status_code)
    else:
        response = StreamingResponse(
            stream_body(upstream),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
    response.raw_headers = answer_headers
    return response


def _target(scope: Scope) -> bytes:
    """The request's path and query as the client encoded them."""
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path or quote(scope["path"]).encode()
    query: bytes = scope.get("query_string", b"")
    return path + b"?" + query if query else path
