"""Routes of the auth service. Public ones are proxied by the gateway unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordRequestForm

from kglab_auth.api.deps import AuthServiceDep, ClientIp, MailerDep
from kglab_auth.domain import OutgoingMail
from kglab_auth.messaging.port import Mailer
from kglab_auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyIdentity,
    ApiKeyOut,
    ApiKeyVerifyRequest,
    ChangePasswordRequest,
    LogoutRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    RotatedKey,
    TokenPairOut,
    UserOut,
    UserPageOut,
    UserUpdate,
)
from kglab_shared.identity import AdminIdentity, CurrentIdentity, ServiceIdentity
from kglab_shared.logging import get_logger

_log = get_logger(__name__)
_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
wellknown_router = APIRouter(tags=["auth"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])


async def _deliver(mailer: Mailer, mail: OutgoingMail) -> None:
    # Runs after the response: the caller must not learn (or wait for) whether a mail went out.
    try:
        await mailer.send(mail)
    except Exception as exc:
        _log.error("mail_delivery_failed", error=type(exc).__name__, subject=mail.subject)


@router.post(
    "/register",
    status_code=201,
    response_model=UserOut,
    responses={409: {"description": "The email is taken.", **_PROBLEM}, 422: _PROBLEM},
)
async def register(body: RegisterRequest, service: AuthServiceDep) -> UserOut:
    """Create an account."""
    return UserOut.of(await service.register(body.email, body.password))


@router.post(
    "/login",
    response_model=TokenPairOut,
    responses={401: _PROBLEM, 403: _PROBLEM, 429: {"description": "Throttled.", **_PROBLEM}},
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    service: AuthServiceDep,
    ip: ClientIp,
) -> TokenPairOut:
    """Sign in with email and password."""
    return TokenPairOut.of(await service.login(form.username, form.password, client_ip=ip))


@router.post("/refresh", response_model=TokenPairOut, responses={401: _PROBLEM, 403: _PROBLEM})
async def refresh(body: RefreshRequest, service: AuthServiceDep) -> TokenPairOut:
    """Exchange a refresh token for a new pair."""
    return TokenPairOut.of(await service.refresh(body.refresh_token))


@router.post("/logout", status_code=204, responses={401: _PROBLEM})
async def logout(
    body: LogoutRequest, identity: CurrentIdentity, service: AuthServiceDep
) -> Response:
    """Sign out the session of a refresh token."""
    await service.logout(identity, body.refresh_token)
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, responses={401: _PROBLEM, 404: _PROBLEM})
async def me(identity: CurrentIdentity, service: AuthServiceDep) -> UserOut:
    """Show the signed-in user."""
    return UserOut.of(await service.me(identity))


@router.post("/password", status_code=204, responses={401: _PROBLEM, 403: _PROBLEM, 422: _PROBLEM})
async def change_password(
    body: ChangePasswordRequest, identity: CurrentIdentity, service: AuthServiceDep
) -> Response:
    """Change the password (signs out every session)."""
    await service.change_password(identity, body.current_password, body.new_password)
    return Response(status_code=204)


@router.post("/password-reset/request", status_code=202, responses={422: _PROBLEM})
async def request_password_reset(
    body: PasswordResetRequest,
    service: AuthServiceDep,
    mailer: MailerDep,
    background: BackgroundTasks,
) -> dict[str, str]:
    """Mail a password-reset link if the address has an account."""
    mail = await service.request_password_reset(body.email)
    if mail is not None:
        background.add_task(_deliver, mailer, mail)
    return {"detail": "If an account uses that address, a reset link is on its way."}


@router.post("/password-reset/confirm", status_code=204, responses={400: _PROBLEM, 422: _PROBLEM})
async def confirm_password_reset(body: PasswordResetConfirm, service: AuthServiceDep) -> Response:
    """Set a new password with a reset token."""
    await service.confirm_password_reset(body.token, body.new_password)
    return Response(status_code=204)


@router.get("/users", response_model=UserPageOut, responses={401: _PROBLEM, 403: _PROBLEM})
async def list_users(
    _: AdminIdentity,
    service: AuthServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPageOut:
    """List users (administrators)."""
    page = await service.list_users(limit=limit, cursor=cursor)
    return UserPageOut(items=[UserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses={401: _PROBLEM, 403: _PROBLEM, 404: _PROBLEM, 409: _PROBLEM},
)
async def update_user(
    user_id: str, body: UserUpdate, admin: AdminIdentity, service: AuthServiceDep
) -> UserOut:
    """Disable, enable or change the role of a user (administrators)."""
    user = await service.update_user(admin, user_id, disabled=body.disabled, role=body.role)
    return UserOut.of(user)


@router.post("/keys/rotate", response_model=RotatedKey, responses={401: _PROBLEM, 403: _PROBLEM})
async def rotate_signing_key(_: AdminIdentity, service: AuthServiceDep) -> RotatedKey:
    """Start signing with a new key (administrators)."""
    return RotatedKey(kid=await service.rotate_signing_key())


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, responses={401: _PROBLEM})
async def create_api_key(
    body: ApiKeyCreate, identity: CurrentIdentity, service: AuthServiceDep
) -> ApiKeyCreated:
    """Create an API key (the key is shown once)."""
    identity.require_scope("api-keys")
    key, plain = await service.create_api_key(identity, body.name, body.scopes)
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=plain)


@router.get("/api-keys", response_model=list[ApiKeyOut], responses={401: _PROBLEM})
async def list_api_keys(identity: CurrentIdentity, service: AuthServiceDep) -> list[ApiKeyOut]:
    """List your live API keys."""
    return [ApiKeyOut.of(k) for k in await service.list_api_keys(identity)]


@router.delete("/api-keys/{key_id}", status_code=204, responses={401: _PROBLEM, 404: _PROBLEM})
async def revoke_api_key(
    key_id: str, identity: CurrentIdentity, service: AuthServiceDep
) -> Response:
    """Revoke an API key."""
    identity.require_scope("api-keys")
    await service.revoke_api_key(identity, key_id)
    return Response(status_code=204)


@router.get("/oauth/{provider}/authorize", status_code=302, responses={404: _PROBLEM})
async def oauth_authorize(provider: str, service: AuthServiceDep) -> RedirectResponse:
    """Start signing in with a third-party provider."""
    return RedirectResponse(await service.oauth_authorization_url(provider), status_code=302)


@router.get(
    "/oauth/{provider}/callback",
    response_model=TokenPairOut,
    responses={401: _PROBLEM, 404: _PROBLEM, 503: _PROBLEM},
)
async def oauth_callback(
    provider: str,
    service: AuthServiceDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> TokenPairOut:
    """Finish signing in with a third-party provider."""
    pair = await service.oauth_callback(provider, code=code, state=state, error=error)
    return TokenPairOut.of(pair)


@wellknown_router.get("/.well-known/jwks.json")
async def jwks(service: AuthServiceDep, response: Response) -> dict[str, Any]:
    """Publish the public keys that verify access tokens."""
    response.headers["Cache-Control"] = "public, max-age=60"
    return await service.jwks()


@internal_router.post(
    "/api-keys/verify", response_model=ApiKeyIdentity, responses={401: _PROBLEM, 403: _PROBLEM}
)
async def verify_api_key(
    body: ApiKeyVerifyRequest, _: ServiceIdentity, service: AuthServiceDep
) -> ApiKeyIdentity:
    """Resolve an API key to its owner (gateway only)."""
    verified = await service.verify_api_key(body.key)
    return ApiKeyIdentity(
        user_id=verified.user_id,
        role=verified.role,
        scopes=list(verified.scopes),
        email=verified.email,
    )


def _summaries_from_docstrings(*routers: APIRouter) -> None:
    """The one-line docstring of each handler is its OpenAPI summary."""
    for each in routers:
        for route in each.routes:
            if isinstance(route, APIRoute) and not route.summary and route.endpoint.__doc__:
                route.summary = route.endpoint.__doc__.strip().splitlines()[0].rstrip(".")


_summaries_from_docstrings(router, wellknown_router, internal_router)
