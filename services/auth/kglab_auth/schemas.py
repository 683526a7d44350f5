"""Request and response bodies of the auth API (with the examples the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from kglab_auth.domain import ApiKey, Role, TokenPair, User


class _Request(BaseModel):
    # Unknown fields are a client bug worth a readable 422, not something to ignore silently.
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Request):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=1024, examples=["correct horse battery staple"])


class RefreshRequest(_Request):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(_Request):
    refresh_token: str = Field(min_length=1, max_length=512)


class ChangePasswordRequest(_Request):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024, examples=["a longer passphrase 2"])


class PasswordResetRequest(_Request):
    email: str = Field(max_length=320, examples=["ada@example.com"])


class PasswordResetConfirm(_Request):
    token: str = Field(min_length=1, max_length=512)
    new_password: str = Field(max_length=1024)


class UserUpdate(_Request):
    disabled: bool | None = None
    role: Role | None = None


class ApiKeyCreate(_Request):
    name: str = Field(min_length=1, max_length=100, examples=["nightly importer"])
    scopes: list[str] = Field(max_length=32, examples=[["documents:read", "documents:write"]])


class ApiKeyVerifyRequest(_Request):
    key: str = Field(min_length=1, max_length=512)


class TokenPairOut(BaseModel):
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


class UserPageOut(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class ApiKeyOut(BaseModel):
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
    key: str = Field(description="The key itself. It is shown this once; store it now.")


class ApiKeyIdentity(BaseModel):
    user_id: str
    role: str
    scopes: list[str]
    email: str


class RotatedKey(BaseModel):
    kid: str = Field(description="The key id that signs new access tokens from now on.")
