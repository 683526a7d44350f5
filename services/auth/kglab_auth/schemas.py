"""Request and response bodies of the auth API (with the examples the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.config import JsonDict

from kglab_auth.domain import ApiKey, Role, TokenPair, User
from kglab_shared.pages import PageOut
from kglab_shared.scopes import SCOPE_DESCRIPTIONS, ApiScope

# One fictional user and session, so every example in the document tells the same story.
_USER_ID = "9c8f1f0e-80c1-4dd9-a796-973982e0ddff"
_EMAIL = "ada@example.com"
_PASSWORD = "correct horse battery staple"
_NEW_PASSWORD = "a longer passphrase 2"
_REFRESH_TOKEN = "wfyCnAHsVJQgJkvIh5WzNoqej5owno1euA_S1ntOAK4"
_ACCESS_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6IjhmU1M1M1F6WXF0MHU0ZlpfLWo5QTJYcWtOdUdRZHdV"
    "YzBvd2tBUlJzV0EifQ.eyJpc3MiOiJrZ2xhYi1hdXRoIiwiYXVkIjoia2dsYWIiLCJzdWIiOiI5YzhmMWYwZS04MG"
    "MxLTRkZDktYTc5Ni05NzM5ODJlMGRkZmYiLCJyb2xlIjoidXNlciIsInR5cCI6ImFjY2VzcyJ9.2c6TYJ5G4az9Tc"
    "p7yspnJvbYrlshkH3T_HhX5kVBc1gjqMaPNIULaDg8hbLinLSxnTcTGcY8OFgeURyxl9KDBA"
)
_KID = "8fSS53QzYqt0u4fZ_-j9A2XqkNuGQdwUc0owkARRsWA"
_USER: JsonDict = {
    "id": _USER_ID,
    "email": _EMAIL,
    "role": "user",
    "disabled": False,
    "created_at": "2026-03-02T09:14:05.112000Z",
}
_API_KEY: JsonDict = {
    "id": "b9ff83e766b6592c",
    "name": "nightly importer",
    "scopes": ["documents:read", "documents:write"],
    "created_at": "2026-03-04T18:30:00Z",
    "last_used_at": "2026-03-05T02:00:12Z",
}
TOKEN_PAIR_EXAMPLE: JsonDict = {
    "access_token": _ACCESS_TOKEN,
    "refresh_token": _REFRESH_TOKEN,
    "token_type": "bearer",
    "expires_in": 900,
}
LOGIN_FORM_EXAMPLE: JsonDict = {"grant_type": "password", "username": _EMAIL, "password": _PASSWORD}
JWKS_EXAMPLE: JsonDict = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "QNGFiTx6U2xgOONdvuz1hD_kf20xwa1C2wIViYkiCt8",
            "use": "sig",
            "alg": "EdDSA",
            "kid": _KID,
        }
    ]
}
RESET_REQUESTED_EXAMPLE: JsonDict = {
    "detail": "If an account uses that address, a reset link is on its way."
}


class _Request(BaseModel):
    # Unknown fields are a client bug worth a readable 422, not something to ignore silently.
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": _EMAIL, "password": _PASSWORD}]}
    )

    email: str = Field(max_length=320, examples=[_EMAIL])
    password: str = Field(max_length=1024, examples=[_PASSWORD])


class RefreshRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": _REFRESH_TOKEN}]})

    refresh_token: str = Field(min_length=1, max_length=512, examples=[_REFRESH_TOKEN])


class LogoutRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": _REFRESH_TOKEN}]})

    refresh_token: str = Field(min_length=1, max_length=512, examples=[_REFRESH_TOKEN])


class ChangePasswordRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"current_password": _PASSWORD, "new_password": _NEW_PASSWORD}]
        }
    )

    current_password: str = Field(max_length=1024, examples=[_PASSWORD])
    new_password: str = Field(max_length=1024, examples=[_NEW_PASSWORD])


class PasswordResetRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": _EMAIL}]})

    email: str = Field(max_length=320, examples=[_EMAIL])


class PasswordResetConfirm(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "mD0yq4cJZp6V8wE1rT5uKx3LbN7sHf2QaGj9YvUo4Ic",
                    "new_password": _NEW_PASSWORD,
                }
            ]
        }
    )

    token: str = Field(
        min_length=1, max_length=512, description="The token from the link in the reset mail."
    )
    new_password: str = Field(max_length=1024, examples=[_NEW_PASSWORD])


class UserUpdate(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"disabled": True}, {"role": "admin"}]}
    )

    disabled: bool | None = None
    role: Role | None = None


_ScopeName = Annotated[
    str,
    WithJsonSchema({"type": "string", "enum": [scope.value for scope in ApiScope]}),
]


class ApiKeyCreate(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": _API_KEY["name"], "scopes": _API_KEY["scopes"]}]}
    )

    name: str = Field(min_length=1, max_length=100, examples=["nightly importer"])
    # Validated by the service, not by pydantic, so an unknown scope gets a 422 that names it and
    # the valid ones; the schema still shows the enum.
    scopes: list[_ScopeName] = Field(
        max_length=32,
        examples=[["documents:read", "documents:write"]],
        description="What the key may do; a key used outside its scopes gets 403. "
        + "; ".join(f"`{scope.value}`: {text}" for scope, text in SCOPE_DESCRIPTIONS.items())
        + ".",
    )


class ApiKeyVerifyRequest(_Request):
    key: str = Field(min_length=1, max_length=512)


class TokenPairOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [TOKEN_PAIR_EXAMPLE]})

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")

    @classmethod
    def of(cls, pair: TokenPair) -> TokenPairOut:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
        )


class UserOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_USER]})

    id: str
    email: str
    role: Role
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class UserPageOut(PageOut[UserOut]):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_USER], "next_cursor": "MjAyNi0wMy0wMlQwOToxNDowNS4xMTJa"}]
        }
    )


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_API_KEY]})

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            scopes=list(key.scopes),
            created_at=key.created_at,
            last_used_at=key.last_used_at,
        )


class ApiKeyCreated(ApiKeyOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_API_KEY,
                    "last_used_at": None,
                    "key": "kglab_b9ff83e766b6592c_tG4JUj1gUFL4ubExrnFsaZxyah9k2OFg5PZ815GaDZY",
                }
            ]
        }
    )

    key: str = Field(description="The key itself. It is shown this once; store it now.")


class ApiKeyIdentity(BaseModel):
    user_id: str
    role: str
    scopes: list[str]
    email: str


class RotatedKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"kid": _KID}]})

    kid: str = Field(description="The key id that signs new access tokens from now on.")
