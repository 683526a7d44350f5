"""Whose address counts: the socket's peer, unless it is a configured proxy (issue 13)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _low_register_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KGLAB_GATEWAY_RATE_LIMITS",
        json.dumps([{"prefix": "/api/v1/auth/register", "limit": 3, "window_s": 60, "per": "ip"}]),
    )


async def _register_from(gateway: httpx.AsyncClient, forwarded: list[str]) -> list[int]:
    # An empty body: auth refuses it (422) without hashing anything, but the limit counts it.
    return [
        (
            await gateway.post(
                "/api/v1/auth/register", json={}, headers={"X-Forwarded-For": address}
            )
        ).status_code
        for address in forwarded
    ]


async def test_invented_forwarded_addresses_do_not_escape_the_per_address_limit(
    gateway: httpx.AsyncClient,
) -> None:
    codes = await _register_from(gateway, [f"203.0.113.{n}" for n in range(1, 6)])
    assert codes == [422, 422, 422, 429, 429]


@pytest.fixture
def _loopback_is_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGLAB_GATEWAY_TRUSTED_PROXIES", "127.0.0.0/8, ::1")


@pytest.mark.usefixtures("_loopback_is_a_proxy")
async def test_a_configured_proxy_names_the_client(gateway: httpx.AsyncClient) -> None:
    # Each forwarded client has a limit of its own; a forwarded address is the client's.
    codes = await _register_from(gateway, [f"203.0.113.{n}" for n in range(1, 6)])
    assert codes == [422] * 5
    same = await _register_from(gateway, ["198.51.100.7"] * 4)
    assert same == [422, 422, 422, 429]


def test_no_server_believes_forwarded_headers_on_its_own() -> None:
    """uvicorn trusts X-Forwarded-For from loopback by default: every server runs with that off,
    so the gateway's setting is the only place a forwarded address is believed."""
    dockerfile = REPO.joinpath("Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith('CMD ["/bin/sh"'))
    assert "--no-proxy-headers" in cmd
    dev = REPO.joinpath("deploy", "dev", "run.py").read_text()
    assert re.search(r"proxy_headers=False", dev)


def test_the_setting_refuses_what_is_not_a_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from kglab_gateway.config import GatewaySettings

    monkeypatch.setenv("KGLAB_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.7")
    assert GatewaySettings().trusted_proxies == ["10.0.0.0/8", "192.168.1.7"]
    monkeypatch.setenv("KGLAB_GATEWAY_TRUSTED_PROXIES", "")
    assert GatewaySettings().trusted_proxies == []
    monkeypatch.setenv("KGLAB_GATEWAY_TRUSTED_PROXIES", "the ingress")
    with pytest.raises(ValueError, match="not an address or a CIDR"):
        GatewaySettings()
