"""A small OpenID Connect provider (and GitHub look-alike) for end-to-end sign-in tests.

It is a real HTTP app served by uvicorn on 127.0.0.1: discovery, authorize (with PKCE), token,
userinfo and JWKS, with id_tokens signed by its own RSA key.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "kglab-test-client"
CLIENT_SECRET = "kglab-test-secret"


@dataclass
class FakeUser:
    sub: str
    email: str
    email_verified: bool = True


@dataclass
class FakeOidcProvider:
    issuer: str = ""
    user: FakeUser = field(default_factory=lambda: FakeUser("fake-sub-1", "oidc.user@example.com"))
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, private=True))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, FakeUser] = field(default_factory=dict)
    token_requests: int = 0
    #: When set, id_tokens are signed with this key instead of the published one (an attack).
    rogue_key: RSAKey | None = None

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def id_token(self, nonce: str, user: FakeUser) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "nonce": nonce,
            "iat": now,
            "exp": now + 300,
        }
        header = {"alg": "RS256", "kid": self.key.thumbprint()}
        return jwt.encode(header, claims, self.rogue_key or self.key, algorithms=["RS256"])


def _client_ok(authorization: str | None, client_id: str | None, secret: str | None) -> bool:
    if authorization and authorization.startswith("Basic "):
        decoded = base64.b64decode(authorization[6:]).decode()
        client_id, _, secret = decoded.partition(":")
    return client_id == CLIENT_ID and secret == CLIENT_SECRET


def create_fake_provider_app(provider: FakeOidcProvider) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return provider.discovery()

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        public = provider.key.as_dict(private=False)
        public["kid"] = provider.key.thumbprint()
        return {"keys": [public]}

    async def _authorize(request: Request) -> Any:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "detail": "PKCE"}, status_code=400)
        code = secrets.token_urlsafe(16)
        provider.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "nonce": q.get("nonce", ""),
            "challenge": q["code_challenge"],
            "user": provider.user,
        }
        target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}"
        return RedirectResponse(target, status_code=302)

    app.add_api_route("/authorize", _authorize, methods=["GET"])
    app.add_api_route("/gh/login/oauth/authorize", _authorize, methods=["GET"])

    async def _token(
        grant_type: str = Form(),
        code: str = Form(),
        redirect_uri: str = Form(),
        code_verifier: str = Form(),
        client_id: str | None = Form(None),
        client_secret: str | None = Form(None),
        authorization: str | None = Header(None),
        with_id_token: bool = True,
    ) -> Any:
        provider.token_requests += 1
        if not _client_ok(authorization, client_id, client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = provider.codes.pop(code, None)
        if grant_type != "authorization_code" or grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        digest = hashlib.sha256(code_verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if challenge != grant["challenge"] or redirect_uri != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "detail": "PKCE"}, status_code=400)
        access = secrets.token_urlsafe(16)
        provider.tokens[access] = grant["user"]
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 300}
        if with_id_token:
            body["id_token"] = provider.id_token(grant["nonce"], grant["user"])
        return body

    app.add_api_route("/token", _token, methods=["POST"])

    @app.post("/gh/login/oauth/access_token")
    async def github_token(request: Request) -> Any:
        form = await request.form()
        return await _token(
            grant_type=str(form.get("grant_type")),
            code=str(form.get("code")),
            redirect_uri=str(form.get("redirect_uri")),
            code_verifier=str(form.get("code_verifier")),
            client_id=form.get("client_id"),  # type: ignore[arg-type]
            client_secret=form.get("client_secret"),  # type: ignore[arg-type]
            authorization=request.headers.get("authorization"),
            with_id_token=False,
        )

    def _bearer_user(authorization: str | None) -> FakeUser | None:
        token = (authorization or "").removeprefix("Bearer ").strip()
        return provider.tokens.get(token)

    @app.get("/userinfo")
    async def userinfo(authorization: str | None = Header(None)) -> Any:
        user = _bearer_user(authorization)
        if user is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return {"sub": user.sub, "email": user.email, "email_verified": user.email_verified}

    @app.get("/gh/api/user")
    async def github_user(authorization: str | None = Header(None)) -> Any:
        user = _bearer_user(authorization)
        if user is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return {"id": int(hashlib.sha256(user.sub.encode()).hexdigest()[:8], 16), "login": "octo"}

    @app.get("/gh/api/user/emails")
    async def github_emails(authorization: str | None = Header(None)) -> Any:
        user = _bearer_user(authorization)
        if user is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return [{"email": user.email, "primary": True, "verified": user.email_verified}]

    return app
