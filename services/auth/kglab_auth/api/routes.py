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
    JWKS_EXAMPLE,
    LOGIN_FORM_EXAMPLE,
    RESET_REQUESTED_EXAMPLE,
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
from kglab_shared.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
    documented,
)
from kglab_shared.identity import AdminIdentity, CurrentIdentity, ServiceIdentity
from kglab_shared.logging import get_logger
from kglab_shared.scopes import ApiScope

_log = get_logger(__name__)
# The errors each route documents, with the details the service really answers.
_Responses = dict[int | str, dict[str, Any]]
_SIGNED_OUT = documented(UnauthorizedError, "Sign in first: this route needs a bearer token.")
_DISABLED = documented(
    ForbiddenError, "This account is disabled; ask an administrator to enable it."
)
_NOT_ADMIN = documented(ForbiddenError, "Only an administrator may do that.")
_WEAK_PASSWORD = documented(
    UnprocessableError,
    "The password is too short: use at least 10 characters (this one has 7).",
    "That password is among the most common ones: choose another.",
    description="The body is malformed, or the password does not meet the policy.",
)
_NO_SCOPE = documented(
    ForbiddenError,
    "This API key lacks the 'keys:manage' scope, which POST /api/v1/auth/api-keys needs.",
    "This key may not create a key with scopes it does not have itself: 'documents:write'.",
    description="An API key without the 'keys:manage' scope may not manage keys, and a key "
    "may not create a key with more scopes than its own.",
)
_NO_PROVIDER = documented(
    NotFoundError, "There is no sign-in provider called 'gitlab' (known: github, oidc)."
)


def _json(example: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}


def _errors(*pairs: tuple[int, dict[str, Any]]) -> _Responses:
    return dict(pairs)


def _problem(error: type[DomainError], *details: str) -> tuple[int, dict[str, Any]]:
    return error.status, documented(error, *details)


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
    responses={
        409: documented(
            ConflictError,
            "An account with ada@example.com already exists; sign in or reset the password.",
        ),
        422: _WEAK_PASSWORD,
    },
)
async def register(body: RegisterRequest, service: AuthServiceDep) -> UserOut:
    """Create an account."""
    return UserOut.of(await service.register(body.email, body.password))


@router.post(
    "/login",
    response_model=TokenPairOut,
    responses=_errors(
        _problem(UnauthorizedError, "The email address or the password is wrong."),
        (403, _DISABLED),
        _problem(
            RateLimitedError,
            "Too many failed sign-ins for this account. Try again in 15 minutes, or reset the "
            "password.",
        ),
    ),
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"example": LOGIN_FORM_EXAMPLE}}
        }
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    service: AuthServiceDep,
    ip: ClientIp,
) -> TokenPairOut:
    """Sign in with email and password."""
    return TokenPairOut.of(await service.login(form.username, form.password, client_ip=ip))


@router.post(
    "/refresh",
    response_model=TokenPairOut,
    responses=_errors(
        _problem(
            UnauthorizedError,
            "The session has expired; sign in again.",
            "This refresh token was already used, so every session that came from it has been "
            "signed out for safety. Sign in again.",
        ),
        (403, _DISABLED),
    ),
)
async def refresh(body: RefreshRequest, service: AuthServiceDep) -> TokenPairOut:
    """Exchange a refresh token for a new pair."""
    return TokenPairOut.of(await service.refresh(body.refresh_token))


@router.post(
    "/logout",
    status_code=204,
    responses={204: {"description": "Signed out: the refresh token is spent."}, 401: _SIGNED_OUT},
)
async def logout(
    body: LogoutRequest, identity: CurrentIdentity, service: AuthServiceDep
) -> Response:
    """Sign out the session of a refresh token."""
    await service.logout(identity, body.refresh_token)
    return Response(status_code=204)


@router.get(
    "/me",
    response_model=UserOut,
    responses=_errors(
        (401, _SIGNED_OUT),
        _problem(NotFoundError, "There is no user account behind this identity."),
    ),
)
async def me(identity: CurrentIdentity, service: AuthServiceDep) -> UserOut:
    """Show the signed-in user."""
    return UserOut.of(await service.me(identity))


@router.post(
    "/password",
    status_code=204,
    responses={
        204: {"description": "Changed; every session is signed out, so sign in again."},
        401: _SIGNED_OUT,
        403: documented(ForbiddenError, "The current password is wrong, so it was not changed."),
        422: _WEAK_PASSWORD,
    },
)
async def change_password(
    body: ChangePasswordRequest, identity: CurrentIdentity, service: AuthServiceDep
) -> Response:
    """Change the password (signs out every session)."""
    await service.change_password(identity, body.current_password, body.new_password)
    return Response(status_code=204)


@router.post(
    "/password-reset/request",
    status_code=202,
    responses={
        202: _json(RESET_REQUESTED_EXAMPLE, "Accepted, whether or not the address has an account."),
        422: documented(UnprocessableError, "'email' is required."),
    },
)
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


@router.post(
    "/password-reset/confirm",
    status_code=204,
    responses={
        204: {"description": "The password is set; every session is signed out."},
        400: documented(
            DomainError, "This reset link is invalid, already used or expired; ask for a new one."
        ),
        422: _WEAK_PASSWORD,
    },
)
async def confirm_password_reset(body: PasswordResetConfirm, service: AuthServiceDep) -> Response:
    """Set a new password with a reset token."""
    await service.confirm_password_reset(body.token, body.new_password)
    return Response(status_code=204)


@router.get("/users", response_model=UserPageOut, responses={401: _SIGNED_OUT, 403: _NOT_ADMIN})
async def list_users(
    _: AdminIdentity,
    service: AuthServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPageOut:
    """List users (administrators)."""
    page = await service.list_users(limit=limit, cursor=cursor)
    return UserPageOut.of(page, UserOut.of)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses=_errors(
        (401, _SIGNED_OUT),
        (403, _NOT_ADMIN),
        _problem(NotFoundError, "There is no user with id 4d1c2e7a-5b8f-4c3d-9e6a-0f1b2c3d4e5f."),
        _problem(
            ConflictError,
            "You cannot disable or demote your own account; ask another administrator.",
        ),
    ),
)
async def update_user(
    user_id: str, body: UserUpdate, admin: AdminIdentity, service: AuthServiceDep
) -> UserOut:
    """Disable, enable or change the role of a user (administrators)."""
    user = await service.update_user(admin, user_id, disabled=body.disabled, role=body.role)
    return UserOut.of(user)


@router.post(
    "/keys/rotate", response_model=RotatedKey, responses={401: _SIGNED_OUT, 403: _NOT_ADMIN}
)
async def rotate_signing_key(_: AdminIdentity, service: AuthServiceDep) -> RotatedKey:
    """Start signing with a new key (administrators)."""
    return RotatedKey(kid=await service.rotate_signing_key())


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=_errors(
        (401, _SIGNED_OUT),
        (403, _NO_SCOPE),
        _problem(
            UnprocessableError,
            "'everything' is not a scope an API key can have; the valid scopes are "
            "documents:read, documents:write, jobs:read, search, graph:read, keys:manage, "
            "metrics:read.",
        ),
    ),
)
async def create_api_key(
    body: ApiKeyCreate, identity: CurrentIdentity, service: AuthServiceDep
) -> ApiKeyCreated:
    """Create an API key (the key is shown once)."""
    identity.require_scope(ApiScope.KEYS_MANAGE)
    key, plain = await service.create_api_key(identity, body.name, body.scopes)
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=plain)


@router.get(
    "/api-keys", response_model=list[ApiKeyOut], responses={401: _SIGNED_OUT, 403: _NO_SCOPE}
)
async def list_api_keys(identity: CurrentIdentity, service: AuthServiceDep) -> list[ApiKeyOut]:
    """List your live API keys."""
    identity.require_scope(ApiScope.KEYS_MANAGE)
    return [ApiKeyOut.of(k) for k in await service.list_api_keys(identity)]


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    responses=_errors(
        (204, {"description": "Revoked: the key no longer signs anyone in."}),
        (401, _SIGNED_OUT),
        (403, _NO_SCOPE),
        _problem(NotFoundError, "You have no live API key with id b9ff83e766b6592c."),
    ),
)
async def revoke_api_key(
    key_id: str, identity: CurrentIdentity, service: AuthServiceDep
) -> Response:
    """Revoke an API key."""
    identity.require_scope(ApiScope.KEYS_MANAGE)
    await service.revoke_api_key(identity, key_id)
    return Response(status_code=204)


@router.get(
    "/oauth/{provider}/authorize",
    status_code=302,
    responses={
        302: {"description": "A redirect to the provider's sign-in page (Location header)."},
        404: _NO_PROVIDER,
    },
)
async def oauth_authorize(provider: str, service: AuthServiceDep) -> RedirectResponse:
    """Start signing in with a third-party provider."""
    return RedirectResponse(await service.oauth_authorization_url(provider), status_code=302)


@router.get(
    "/oauth/{provider}/callback",
    response_model=TokenPairOut,
    responses=_errors(
        _problem(
            UnauthorizedError, "The sign-in provider 'github' refused the sign-in: access_denied."
        ),
        (404, _NO_PROVIDER),
        _problem(UnprocessableError, "The callback needs both 'code' and 'state'."),
        _problem(
            ServiceUnavailableError,
            "The sign-in provider 'github' did not answer as expected (ConnectTimeout); "
            "try again later.",
        ),
    ),
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


@wellknown_router.get(
    "/.well-known/jwks.json",
    responses={200: _json(JWKS_EXAMPLE, "The JSON Web Key Set; cache it for a minute.")},
)
async def jwks(service: AuthServiceDep, response: Response) -> dict[str, Any]:
    """Publish the public keys that verify access tokens."""
    response.headers["Cache-Control"] = "public, max-age=60"
    return await service.jwks()


@internal_router.post(
    "/api-keys/verify",
    response_model=ApiKeyIdentity,
    responses={
        401: documented(UnauthorizedError, "The API key has been revoked."),
        403: documented(
            ForbiddenError, "Only another Knowledge Graph Lab service may call this route."
        ),
    },
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
