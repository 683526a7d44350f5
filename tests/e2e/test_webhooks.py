"""Webhook endpoints through the gateway, as ``make dev`` composes the system (and on the real
servers): creation is idempotent (the same secret comes back, once more, to the retrying
client), a key without ``webhooks:manage`` is refused, and another user's endpoint is 404."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.test_ingestion_flow import sign_up

ENDPOINT = {"url": "https://hooks.example.org/kglab", "events": ["job.completed"]}


async def test_creating_an_endpoint_with_an_idempotency_key_makes_one(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await gateway.post("/api/v1/webhooks", json=ENDPOINT, headers={**auth, **key})
    assert first.status_code == 201, first.text
    again = await gateway.post("/api/v1/webhooks", json=ENDPOINT, headers={**auth, **key})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # the same endpoint and the same secret
    other = await gateway.post(
        "/api/v1/webhooks", json={**ENDPOINT, "events": ["job.failed"]}, headers={**auth, **key}
    )
    assert other.status_code == 422
    listed = (await gateway.get("/api/v1/webhooks", headers=auth)).json()["items"]
    assert [e["id"] for e in listed] == [first.json()["id"]]


async def test_keys_need_the_webhooks_scope_and_users_see_only_their_own(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    created = await gateway.post("/api/v1/webhooks", json=ENDPOINT, headers=auth)
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]

    async def key_with(scopes: list[str]) -> dict[str, str]:
        response = await gateway.post(
            "/api/v1/auth/api-keys", json={"name": "hooks", "scopes": scopes}, headers=auth
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    writer = await key_with(["documents:write", "jobs:read"])
    refused = await gateway.post("/api/v1/webhooks", json=ENDPOINT, headers=writer)
    assert refused.status_code == 403
    assert "'webhooks:manage' scope" in refused.json()["detail"]
    manager = await key_with(["webhooks:manage"])
    mine = await gateway.get(f"/api/v1/webhooks/{endpoint_id}", headers=manager)
    assert mine.status_code == 200, mine.text
    assert "secret" not in mine.json()

    stranger = await sign_up(gateway)
    for method, path in [
        ("GET", f"/api/v1/webhooks/{endpoint_id}"),
        ("DELETE", f"/api/v1/webhooks/{endpoint_id}"),
        ("GET", f"/api/v1/webhooks/{endpoint_id}/deliveries"),
    ]:
        response = await gateway.request(method, path, headers=stranger)
        assert response.status_code == 404, (method, path, response.text)
    assert (await gateway.get(f"/api/v1/webhooks/{endpoint_id}", headers=auth)).status_code == 200
