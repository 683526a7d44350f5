"""Third-party sign-in (OAuth2 / OpenID Connect) with authlib's httpx client.

An OIDC provider is configured by its discovery URL; GitHub (plain OAuth2, no id_token) by its
fixed endpoints. Either way the service gets an :class:`ExternalIdentity` back.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

# Imported first: it installs authlib's own "always" filter, which the block below overrides.
import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401
import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from kglab_auth.config import OAuthProviderSettings
from kglab_shared.errors import DomainError, ServiceUnavailableError, UnauthorizedError

with warnings.catch_warnings():
    # authlib announces a future move of its httpx integration; the API we use is unchanged.
    warnings.simplefilter("ignore")
    from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

# authlib's httpx integration runs on httpx2 when that fork is installed (another package pulls
# it in) and on httpx otherwise: catch transport errors from both, and give it a plain timeout.
try:
    import httpx2

    _HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:  # pragma: no cover - depends on what else is installed
    _HTTP_ERRORS = (httpx.HTTPError,)

_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (*_HTTP_ERRORS, ValueError)
_RESPONSE_ERRORS: tuple[type[Exception], ...] = (*_HTTP_ERRORS, ValueError, KeyError)

# Asymmetric only: an HS* id_token "signed" with a public key must never verify.
_ID_TOKEN_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
_DISCOVERY_TTL_S = 3600.0


def _seconds(timeout: httpx.Timeout) -> float:
    return max(t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool, 10.0) if t)


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    provider: str
    subject: str
    email: str | None
    email_verified: bool


class OAuthProvider(Protocol):
    name: str

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str: ...

    async def identity(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ExternalIdentity: ...


def _provider_failed(name: str, exc: Exception) -> DomainError:
    return ServiceUnavailableError(
        f"The sign-in provider '{name}' did not answer as expected ({type(exc).__name__}); "
        "try again later."
    )


def _provider_refused(name: str, exc: Exception) -> DomainError:
    reason = str(getattr(exc, "error", "") or type(exc).__name__)
    description = str(getattr(exc, "description", "") or "").strip().rstrip(".")
    said = f"{reason}: {description}" if description else reason
    return UnauthorizedError(f"The sign-in provider '{name}' refused the sign-in ({said}).")


class OidcProvider:
    """Any OpenID Connect issuer, found through its discovery document."""

    def __init__(self, name: str, config: OAuthProviderSettings, http: httpx.AsyncClient):
        if not config.discovery_url:
            raise ValueError(f"OAuth provider '{name}' of kind oidc needs a discovery_url.")
        self.name = name
        self._config = config
        self._http = http
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = 0.0

    async def _metadata(self) -> dict[str, Any]:
        if self._discovery is None or time.monotonic() - self._discovered_at > _DISCOVERY_TTL_S:
            try:
                response = await self._http.get(str(self._config.discovery_url))
                response.raise_for_status()
                document = response.json()
            except _TRANSPORT_ERRORS as exc:
                raise _provider_failed(self.name, exc) from exc
            for required in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
                if required not in document:
                    raise ServiceUnavailableError(
                        f"The discovery document of '{self.name}' lacks '{required}'."
                    )
            self._discovery, self._discovered_at = document, time.monotonic()
        return self._discovery

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self._config.client_id,
            client_secret=self._config.client_secret.get_secret_value(),
            scope=self._config.scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=_seconds(self._http.timeout),
        )

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        metadata = await self._metadata()
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
            )
        return str(url)

    async def identity(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ExternalIdentity:
        metadata = await self._metadata()
        try:
            async with self._client(redirect_uri) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=code_verifier
                )
            jwks_response = await self._http.get(metadata["jwks_uri"])
            jwks_response.raise_for_status()
            jwks = jwks_response.json()
        except _TRANSPORT_ERRORS as exc:
            raise _provider_failed(self.name, exc) from exc
        except AuthlibBaseError as exc:  # the provider refused the code
            raise _provider_refused(self.name, exc) from exc
        id_token = token.get("id_token")
        if not id_token:
            raise UnauthorizedError(f"The sign-in provider '{self.name}' sent no id_token.")
        try:
            decoded = jwt.decode(
                id_token, KeySet.import_key_set(jwks), algorithms=_ID_TOKEN_ALGORITHMS
            )
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": self._config.client_id},
                sub={"essential": True},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError, KeyError) as exc:
            raise UnauthorizedError(
                f"The identity token from '{self.name}' is not valid, so the sign-in was refused."
            ) from exc
        claims = dict(decoded.claims)
        if not claims.get("email") and metadata.get("userinfo_endpoint"):
            claims.update(await self._userinfo(metadata["userinfo_endpoint"], token))
        return ExternalIdentity(
            provider=self.name,
            subject=str(claims["sub"]),
            email=claims.get("email"),
            email_verified=bool(claims.get("email_verified", False)),
        )

    async def _userinfo(self, url: str, token: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.get(
                url, headers={"Authorization": f"Bearer {token['access_token']}"}
            )
            response.raise_for_status()
            info = response.json()
        except _RESPONSE_ERRORS as exc:
            raise _provider_failed(self.name, exc) from exc
        return {k: info[k] for k in ("email", "email_verified") if k in info}


class GitHubProvider:
    """GitHub's OAuth2 (no OIDC): the identity comes from its REST API."""

    def __init__(self, name: str, config: OAuthProviderSettings, http: httpx.AsyncClient):
        self.name = name
        self._config = config
        self._http = http

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self._config.client_id,
            client_secret=self._config.client_secret.get_secret_value(),
            scope=self._config.scope if self._config.scope != "openid email profile" else None,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=_seconds(self._http.timeout),
        )

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self._config.authorize_url, state=state, code_verifier=code_verifier
            )
        return str(url)

    async def identity(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ExternalIdentity:
        try:
            async with self._client(redirect_uri) as client:
                token = await client.fetch_token(
                    self._config.token_url,
                    code=code,
                    code_verifier=code_verifier,
                    headers={"Accept": "application/json"},
                )
            headers = {
                "Authorization": f"Bearer {token['access_token']}",
                "Accept": "application/vnd.github+json",
            }
            user = (await self._http.get(f"{self._config.api_url}/user", headers=headers)).json()
            emails = (
                await self._http.get(f"{self._config.api_url}/user/emails", headers=headers)
            ).json()
        except _RESPONSE_ERRORS as exc:
            raise _provider_failed(self.name, exc) from exc
        except AuthlibBaseError as exc:  # the provider refused the code
            raise _provider_refused(self.name, exc) from exc
        primary = next(
            (e for e in emails if isinstance(e, dict) and e.get("primary") and e.get("verified")),
            None,
        )
        return ExternalIdentity(
            provider=self.name,
            subject=str(user["id"]),
            email=primary["email"] if primary else None,
            email_verified=primary is not None,
        )


def build_providers(
    configs: dict[str, OAuthProviderSettings], http: httpx.AsyncClient
) -> dict[str, OAuthProvider]:
    providers: dict[str, OAuthProvider] = {}
    for name, config in configs.items():
        if config.kind == "github":
            providers[name] = GitHubProvider(name, config, http)
        else:
            providers[name] = OidcProvider(name, config, http)
    return providers
