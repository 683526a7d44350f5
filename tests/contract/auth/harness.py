"""Drives the auth app over HTTP inside its lifespan, as the gateway would, on either wiring.

``embedded``: SQLite file + in-memory throttle + file outbox.
``real``: a fresh PostgreSQL database + Redis under a unique key prefix + a local SMTP server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from kglab_auth.config import AuthSettings
from kglab_auth.main import create_app
from kglab_auth.tokens import AccessTokenVerifier
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.conftest import unique_name
from tests.contract.auth.servers import fresh_postgres_database, smtp_server

WIRINGS = ("embedded", "real")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "root passphrase 1"
PASSWORD = "correct horse 42"
GATEWAY_IP = "203.0.113.7"
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}


@dataclass
class Session:
    user_id: str
    email: str
    access_token: str
    refresh_token: str
    headers: dict[str, str]


@dataclass
class AuthHarness:
    wiring: str
    app: FastAPI
    client: httpx.AsyncClient
    settings: AuthSettings
    codec: IdentityCodec
    read_mail: Callable[[], list[Message]]

    def identity_headers(self, identity: Identity) -> dict[str, str]:
        return {IDENTITY_HEADER: self.codec.mint(identity)}

    def anonymous_headers(self, ip: str = GATEWAY_IP) -> dict[str, str]:
        return self.identity_headers(Identity(user_id="anonymous", role="anonymous", client_ip=ip))

    def service_headers(self) -> dict[str, str]:
        return self.identity_headers(Identity(user_id="gateway", role="service"))

    async def verifier(self) -> AccessTokenVerifier:
        jwks = (await self.client.get("/.well-known/jwks.json")).json()
        return AccessTokenVerifier(
            jwks, issuer=self.settings.issuer, audience=self.settings.audience
        )

    async def headers_for(self, access_token: str) -> dict[str, str]:
        """What the gateway does: verify the bearer token locally, forward a signed identity."""
        claims = (await self.verifier()).verify(access_token)
        return self.identity_headers(
            Identity(
                user_id=claims.subject,
                role=claims.role,
                scopes=frozenset(claims.scope.split()),
                email=claims.email,
                client_ip=GATEWAY_IP,
            )
        )

    async def register(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )

    async def login(
        self, email: str, password: str = PASSWORD, *, ip: str = GATEWAY_IP
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login",
            data={"username": email, "password": password},
            headers=self.anonymous_headers(ip),
        )

    async def session_from(self, response: httpx.Response, email: str) -> Session:
        assert response.status_code == 200, response.text
        body = response.json()
        headers = await self.headers_for(body["access_token"])
        claims = (await self.verifier()).verify(body["access_token"])
        return Session(claims.subject, email, body["access_token"], body["refresh_token"], headers)

    async def signed_up(self, email: str, password: str = PASSWORD) -> Session:
        registered = await self.register(email, password)
        assert registered.status_code == 201, registered.text
        return await self.session_from(await self.login(email, password), email)

    async def admin(self) -> Session:
        return await self.session_from(await self.login(ADMIN_EMAIL, ADMIN_PASSWORD), ADMIN_EMAIL)

    async def wait_for_mail(self, to: str, *, timeout_s: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.read_mail():
                if message["To"] == to:
                    return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"No mail to {to} arrived within {timeout_s} s.")


def _file_outbox_reader(directory: Path) -> Callable[[], list[Message]]:
    def read() -> list[Message]:
        if not directory.exists():
            return []
        return [message_from_bytes(p.read_bytes()) for p in sorted(directory.glob("*.eml"))]

    return read


async def _clear_redis_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def auth_harness(
    wiring: str,
    tmp_path: Path,
    *,
    postgres_url: str | None = None,
    redis_url: str | None = None,
    **overrides: Any,
) -> AsyncIterator[AuthHarness]:
    async with AsyncExitStack() as stack:
        values: dict[str, Any] = {
            "KGLAB_ENVIRONMENT": "test",
            "KGLAB_DATA_DIR": tmp_path,
            "KGLAB_BUS": "memory",
            "KGLAB_LOG_JSON": False,
            "login_max_failures_per_account_and_ip": 3,
            "login_max_failures_per_ip": 5,
            "login_slow_after_failures_per_account": 6,
            "login_slow_delay_s": 0.3,
            "bootstrap_admin_email": ADMIN_EMAIL,
            "bootstrap_admin_password": ADMIN_PASSWORD,
            "public_base_url": "http://gateway.test",
            **FAST_ARGON2,
        }
        if wiring == "real":
            assert postgres_url
            assert redis_url
            database = await stack.enter_async_context(fresh_postgres_database(postgres_url))
            prefix = f"{unique_name('kglab_auth_test')}:"
            stack.push_async_callback(_clear_redis_prefix, redis_url, prefix)
            sink, smtp_url = stack.enter_context(smtp_server())
            values |= {
                "KGLAB_STORES": "real",
                "KGLAB_POSTGRES_URL": database,
                "KGLAB_REDIS_URL": redis_url,
                "KGLAB_SMTP_URL": smtp_url,
                "redis_key_prefix": prefix,
            }
            read_mail = sink.messages
        else:
            values |= {"KGLAB_STORES": "embedded", "KGLAB_SMTP_URL": None}
            read_mail = _file_outbox_reader(tmp_path / "mail")
        values |= overrides
        settings = AuthSettings(**values)
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://auth.test")
        )
        yield AuthHarness(
            wiring=wiring,
            app=app,
            client=client,
            settings=settings,
            codec=IdentityCodec(settings.internal_token_secret.get_secret_value()),
            read_mail=read_mail,
        )


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    detail = str(body["detail"])
    assert detail.endswith("."), detail
    for fragment in fragments:
        assert fragment in detail, detail
    return dict(body)
