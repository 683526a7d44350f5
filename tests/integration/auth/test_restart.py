"""Signing keys and sessions survive a restart: nobody is logged out by a deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from kglab_auth.config import AuthSettings
from kglab_auth.main import create_app
from kglab_auth.tokens import AccessTokenVerifier
from tests.conftest import unique_name
from tests.contract.auth.harness import FAST_ARGON2, PASSWORD


async def _run(settings: AuthSettings, steps: Any) -> Any:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://auth.test") as c,
    ):
        return await steps(c)


async def _restart_keeps_sessions(settings: AuthSettings) -> None:
    async def first(c: httpx.AsyncClient) -> dict[str, Any]:
        await c.post("/api/v1/auth/register", json={"email": "r@example.com", "password": PASSWORD})
        pair = (
            await c.post(
                "/api/v1/auth/login", data={"username": "r@example.com", "password": PASSWORD}
            )
        ).json()
        return {"pair": pair, "jwks": (await c.get("/.well-known/jwks.json")).json()}

    async def second(c: httpx.AsyncClient) -> dict[str, Any]:
        jwks = (await c.get("/.well-known/jwks.json")).json()
        refreshed = await c.post(
            "/api/v1/auth/refresh", json={"refresh_token": before["pair"]["refresh_token"]}
        )
        return {"jwks": jwks, "refresh": refreshed}

    before = await _run(settings, first)
    after = await _run(settings, second)
    assert after["jwks"] == before["jwks"]
    verifier = AccessTokenVerifier(after["jwks"], issuer="kglab-auth", audience="kglab")
    assert verifier.verify(before["pair"]["access_token"]).email == "r@example.com"
    assert after["refresh"].status_code == 200


async def test_restart_keeps_sessions_on_sqlite(tmp_path: Path) -> None:
    settings = AuthSettings(
        KGLAB_ENVIRONMENT="test", KGLAB_DATA_DIR=tmp_path, KGLAB_STORES="embedded", **FAST_ARGON2
    )
    await _restart_keeps_sessions(settings)


@pytest.mark.backend("postgres")
async def test_restart_keeps_sessions_on_postgres(
    auth_database: str, redis_url: str, tmp_path: Path
) -> None:
    settings = AuthSettings(
        KGLAB_ENVIRONMENT="test",
        KGLAB_DATA_DIR=tmp_path,
        KGLAB_STORES="real",
        KGLAB_POSTGRES_URL=auth_database,
        KGLAB_REDIS_URL=redis_url,
        redis_key_prefix=f"{unique_name('kglab_auth_it')}:",
        **FAST_ARGON2,
    )
    await _restart_keeps_sessions(settings)
