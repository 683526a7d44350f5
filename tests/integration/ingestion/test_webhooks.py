"""Signed webhooks against a real receiver on 127.0.0.1 (aiohttp), on embedded and real stores:
deliveries verify with the README's snippet; a receiver that is down, slow or answering 500 is
retried on the (shrunk) schedule and then failed; replays; secret rotation's overlap; address
rules; another user's endpoint is 404; the endpoint limit; two replicas deliver each event once.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from kglab_ingestion.domain import utc_now
from tests.integration.ingestion.conftest import ALICE, BOB, MARKDOWN, IngestionApp
from tests.waiting import wait_until

README = Path(__file__).resolve().parents[3] / "README.md"
#: Fast schedule: three attempts 0.2 s apart, then failed.
FAST = {
    "allowed_networks": "127.0.0.1/32",
    "webhook_poll_interval_s": 0.05,
    "webhook_retry_delays_s": "0.2,0.2",
    "webhook_retry_jitter": 0.0,
    "webhook_timeout_s": 1.0,
}


def readme_verify() -> Callable[[str, bytes, str], bool]:
    """The verification snippet exactly as the README shows it."""
    text = README.read_text()
    match = re.search(r"<!-- webhook-verification -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its webhook verification snippet"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)  # the documented code, run as a receiver would
    verify: Callable[[str, bytes, str], bool] = namespace["verify"]
    return verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event_type(self) -> str:
        return self.headers["Kglab-Event-Type"]


@dataclass
class Receiver:
    """A webhook receiver; ``mode`` is ok (204), fail (500), redirect (302 to another path it
    also serves) or slow (answers after the sender's timeout, released at the end)."""

    port: int
    mode: str = "ok"
    received: list[Received] = field(default_factory=list)
    redirected: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        if self.mode == "slow":
            await asyncio.wait_for(self._release.wait(), timeout=10)
        if self.mode == "fail":
            return web.Response(status=500, text="receiver broke")
        if self.mode == "redirect":
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        return web.Response(status=204)

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self.redirected.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        app.router.add_route("*", "/elsewhere", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Any]]:
    started: list[Receiver] = []

    async def make(mode: str = "ok", *, up: bool = True) -> Receiver:
        receiver = Receiver(free_port(), mode)
        started.append(receiver)
        if up:
            await receiver.start()
        return receiver

    yield make
    for receiver in started:
        await receiver.stop()


async def register(
    app: IngestionApp, url: str, events: list[str] | None = None, user: str = ALICE
) -> dict[str, Any]:
    response = await app.client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": events or ["job.completed", "job.failed"]},
        headers=app.headers(user),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(app: IngestionApp, endpoint_id: str, user: str = ALICE) -> list[Any]:
    response = await app.client.get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=app.headers(user)
    )
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def complete_a_job(app: IngestionApp, content: bytes = MARKDOWN) -> str:
    response = await app.upload(content)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    await app.wait_for_status(job_id, "completed")
    return job_id


async def settled(app: IngestionApp, endpoint_id: str, *statuses: str, count: int = 1) -> list[Any]:
    """Wait until the endpoint has ``count`` deliveries and every one is in ``statuses``."""
    found: list[Any] = []

    async def done() -> bool:
        nonlocal found
        found = await deliveries(app, endpoint_id)
        return len(found) >= count and all(d["status"] in statuses for d in found)

    await wait_until(done, timeout_s=20, step_s=0.05, what=f"deliveries {statuses}")
    return found


async def test_a_delivery_is_signed_and_verifies_with_the_readme_snippet(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(**FAST)
    receiver: Receiver = await receivers()
    with capture_logs() as logs:
        endpoint = await register(app, receiver.url)
        assert endpoint["secret"].startswith("whsec_")
        job_id = await complete_a_job(app)
        [delivery] = await settled(app, endpoint["id"], "succeeded")
    # The attempt is logged, the secret never.
    assert any(entry["event"] == "webhook_attempt" for entry in logs)
    secret_body = endpoint["secret"].removeprefix("whsec_")
    assert all(secret_body not in repr(entry) for entry in logs)
    [got] = receiver.received
    verify = readme_verify()
    assert verify(endpoint["secret"], got.body, got.headers["Kglab-Signature"])
    assert not verify("whsec_not-the-secret", got.body, got.headers["Kglab-Signature"])
    assert not verify(endpoint["secret"], got.body + b" ", got.headers["Kglab-Signature"])
    # An old signature (a captured delivery sent again later) is refused by the tolerance.
    old = got.headers["Kglab-Signature"].replace("t=", "t=1", 1)
    assert not verify(endpoint["secret"], got.body, old)
    assert got.headers["Kglab-Webhook-Id"] == delivery["id"]
    assert got.headers["Kglab-Event-Type"] == "job.completed"
    assert got.headers["Content-Type"] == "application/json"
    event = json.loads(got.body)
    assert event["type"] == "job.completed"
    assert event["job"]["job_id"] == job_id
    assert event["id"] == got.headers["Kglab-Event-Id"] == delivery["event_id"]
    assert delivery["attempts"][0]["status_code"] == 204
    # Only the subscribed events: the pending and processing states were not sent.
    assert {r.event_type for r in receiver.received} == {"job.completed"}
    # The secret is shown once: never again in the endpoint's own answers.
    shown = await app.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=app.headers())
    assert "secret" not in shown.json()


async def test_a_receiver_that_is_down_is_retried_until_it_comes_up(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(
        **{**FAST, "webhook_retry_delays_s": ",".join(["0.2"] * 50)}
    )
    receiver: Receiver = await receivers(up=False)
    endpoint = await register(app, receiver.url)
    await complete_a_job(app)

    async def refused_twice() -> bool:
        found = await deliveries(app, endpoint["id"])
        return bool(found) and found[0]["attempt_count"] >= 2

    await wait_until(refused_twice, timeout_s=20, step_s=0.05, what="two refused attempts")
    [pending] = await deliveries(app, endpoint["id"])
    assert pending["status"] == "pending"
    assert pending["next_attempt_at"] is not None
    assert pending["attempts"][0]["status_code"] is None
    assert "could not be reached" in pending["attempts"][0]["error"]

    await receiver.start()
    [delivered] = await settled(app, endpoint["id"], "succeeded")
    assert delivered["attempts"][-1]["status_code"] == 204
    assert len(receiver.received) == 1
    assert receiver.received[0].headers["Kglab-Webhook-Id"] == delivered["id"]


async def test_a_slow_receiver_times_out_and_is_retried(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(
        **{**FAST, "webhook_timeout_s": 0.3, "webhook_retry_delays_s": ",".join(["0.2"] * 50)}
    )
    receiver: Receiver = await receivers("slow")
    endpoint = await register(app, receiver.url)
    await complete_a_job(app)

    async def timed_out() -> bool:
        found = await deliveries(app, endpoint["id"])
        return bool(found) and found[0]["attempt_count"] >= 1

    await wait_until(timed_out, timeout_s=20, step_s=0.05, what="a timed-out attempt")
    [slow] = await deliveries(app, endpoint["id"])
    assert slow["attempts"][0]["error"] == "The endpoint did not answer within 0.3 s."
    assert slow["attempts"][0]["status_code"] is None
    receiver.mode = "ok"
    [delivered] = await settled(app, endpoint["id"], "succeeded")
    ids = {r.headers["Kglab-Webhook-Id"] for r in receiver.received}
    assert ids == {delivered["id"]}  # every attempt is the same delivery


async def test_a_receiver_answering_500_is_retried_then_failed_and_can_be_replayed(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(**FAST)
    receiver: Receiver = await receivers("fail")
    endpoint = await register(app, receiver.url)
    await complete_a_job(app)

    [failed] = await settled(app, endpoint["id"], "failed")
    # One attempt, then one per wait of the schedule (two), then failed.
    assert failed["attempt_count"] == 3
    assert [a["status_code"] for a in failed["attempts"]] == [500, 500, 500]
    assert failed["attempts"][0]["error"] == "The endpoint answered HTTP 500."
    assert failed["next_attempt_at"] is None
    assert len(receiver.received) == 3
    gaps = [
        (b["at"], a["at"]) for a, b in zip(failed["attempts"], failed["attempts"][1:], strict=False)
    ]
    for later, earlier in gaps:
        waited = datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
        assert waited.total_seconds() >= 0.19  # the schedule's wait, not a busy loop

    receiver.mode = "ok"
    replay = await app.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/deliveries/{failed['id']}/replay",
        headers=app.headers(),
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["replay_of"] == failed["id"]
    await wait_until(
        lambda: len(receiver.received) == 4, timeout_s=10, what="the replay's delivery"
    )
    replayed = receiver.received[-1]
    assert replayed.headers["Kglab-Webhook-Id"] == replay.json()["id"] != failed["id"]
    assert replayed.headers["Kglab-Event-Id"] == failed["event_id"]
    assert replayed.body == receiver.received[0].body
    both = await settled(app, endpoint["id"], "failed", "succeeded", count=2)
    statuses = {d["id"]: d["status"] for d in both}
    assert statuses == {failed["id"]: "failed", replay.json()["id"]: "succeeded"}


async def test_a_rotated_secret_overlaps_then_only_the_new_one_signs(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(**FAST)
    receiver: Receiver = await receivers()
    endpoint = await register(app, receiver.url)
    await complete_a_job(app)
    [delivery] = await settled(app, endpoint["id"], "succeeded")
    old_secret = endpoint["secret"]
    verify = readme_verify()

    rotated = await app.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret",
        json={"overlap_seconds": 2},
        headers=app.headers(),
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    overlap_ends = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])

    async def replay_and_receive() -> Received:
        count = len(receiver.received)
        response = await app.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/replay",
            headers=app.headers(),
        )
        assert response.status_code == 202, response.text
        await wait_until(lambda: len(receiver.received) > count, timeout_s=10, what="delivery")
        return receiver.received[-1]

    during = await replay_and_receive()
    header = during.headers["Kglab-Signature"]
    assert header.count("v1=") == 2
    assert verify(new_secret, during.body, header)
    assert verify(old_secret, during.body, header)

    await wait_until(lambda: utc_now() > overlap_ends, timeout_s=5, what="the overlap's end")
    after = await replay_and_receive()
    header = after.headers["Kglab-Signature"]
    assert header.count("v1=") == 1
    assert verify(new_secret, after.body, header)
    assert not verify(old_secret, after.body, header)

    too_long = await app.client.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret",
        json={"overlap_seconds": 30 * 86400},
        headers=app.headers(),
    )
    assert too_long.status_code == 422
    assert "between 0 and 604800 s" in too_long.json()["detail"]


async def test_loopback_urls_are_refused_without_the_allow_list(
    ingestion: IngestionApp,
) -> None:
    for url, words in [
        ("http://127.0.0.1:9/hook", "cannot receive webhooks"),
        ("http://localhost/hook", "cannot receive webhooks"),
        ("http://10.1.2.3/hook", "private, loopback"),
        ("ftp://example.org/hook", "Only http:// and https://"),
    ]:
        response = await ingestion.client.post(
            "/api/v1/webhooks",
            json={"url": url, "events": ["job.completed"]},
            headers=ingestion.headers(),
        )
        assert response.status_code == 422, (url, response.text)
        assert words in response.json()["detail"], response.json()
    listed = await ingestion.client.get("/api/v1/webhooks", headers=ingestion.headers())
    assert listed.json()["items"] == []


async def test_bad_requests_get_a_readable_422(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(**FAST, webhook_max_endpoints=2)
    receiver: Receiver = await receivers()
    unknown = await app.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "events": ["job.done"]},
        headers=app.headers(),
    )
    assert unknown.status_code == 422
    assert "Unknown event type 'job.done'" in unknown.json()["detail"]
    await register(app, receiver.url)
    await register(app, receiver.url)
    third = await app.client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "events": ["job.failed"]},
        headers=app.headers(),
    )
    assert third.status_code == 422
    assert "already have 2 webhook endpoints" in third.json()["detail"]
    # Another user has a limit of their own.
    await register(app, receiver.url, user=BOB)
    # Control characters (a NUL, which PostgreSQL's text refuses) are a 422, never stored.
    for method, path in [("POST", "/api/v1/webhooks"), ("PATCH", None)]:
        target = path or f"/api/v1/webhooks/{(await register(app, receiver.url, user=BOB))['id']}"
        body: dict[str, Any] = {"description": "a\u0000b"}
        if method == "POST":
            body |= {"url": receiver.url, "events": ["job.failed"]}
        refused = await app.client.request(method, target, json=body, headers=app.headers(BOB))
        assert refused.status_code == 422, refused.text
        assert "control characters" in refused.json()["detail"]


async def test_another_users_endpoint_is_404_and_crud_works(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(**FAST)
    receiver: Receiver = await receivers()
    endpoint = await register(app, receiver.url)
    path = f"/api/v1/webhooks/{endpoint['id']}"
    bob = app.headers(BOB)
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/rotate-secret", None),
        ("GET", "/deliveries", None),
        ("POST", "/deliveries/x/replay", None),
    ]:
        response = await app.client.request(method, path + suffix, json=body, headers=bob)
        assert response.status_code == 404, (method, suffix, response.text)
    assert (await app.client.get("/api/v1/webhooks", headers=bob)).json()["items"] == []

    patched = await app.client.patch(
        path,
        json={"events": ["job.failed"], "description": "failures only", "enabled": False},
        headers=app.headers(),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["job.failed"]
    assert patched.json()["enabled"] is False
    assert patched.json()["description"] == "failures only"
    # A disabled endpoint, or one not subscribed to an event, gets nothing.
    await complete_a_job(app)
    page = (await app.client.get("/api/v1/webhooks", headers=app.headers())).json()
    assert [e["id"] for e in page["items"]] == [endpoint["id"]]
    assert (await app.client.delete(path, headers=app.headers())).status_code == 204
    assert (await app.client.get(path, headers=app.headers())).status_code == 404
    assert receiver.received == []


async def test_two_replicas_deliver_every_event_exactly_once(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    first: IngestionApp = await ingestion_factory(**FAST)
    second: IngestionApp = await ingestion_factory(**FAST)  # the same database
    receiver: Receiver = await receivers()
    endpoint = await register(first, receiver.url)
    jobs = [await complete_a_job(first, MARKDOWN + f"\nCopy {n}.\n".encode()) for n in range(4)]
    found = await settled(second, endpoint["id"], "succeeded", count=4)
    assert len(found) == 4
    await wait_until(lambda: len(receiver.received) >= 4, timeout_s=10, what="four deliveries")
    events = [json.loads(r.body) for r in receiver.received]
    assert sorted(e["job"]["job_id"] for e in events) == sorted(jobs)
    assert len({r.headers["Kglab-Webhook-Id"] for r in receiver.received}) == 4
    assert len(receiver.received) == 4

    # Deliveries page like every list: newest first, by cursor.
    path = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
    first_page = (await first.client.get(path, params={"limit": 3}, headers=first.headers())).json()
    assert len(first_page["items"]) == 3
    rest = await first.client.get(
        path, params={"limit": 3, "cursor": first_page["next_cursor"]}, headers=first.headers()
    )
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None
    paged = {d["id"] for d in first_page["items"] + rest.json()["items"]}
    assert paged == {d["id"] for d in found}
    bad = await first.client.get(path, params={"cursor": "nope"}, headers=first.headers())
    assert bad.status_code == 422
    assert "cursor" in bad.json()["detail"]


async def test_an_address_refused_at_delivery_time_fails_the_delivery_at_once(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    # Registered while the allow-list let 127.0.0.1 in; the replica sending it has none (the
    # rules narrowed, or the name now resolves inward): the address is checked again, and as
    # no retry can change the rules' answer the delivery fails at once (a day-long schedule).
    allowing: IngestionApp = await ingestion_factory(**FAST, run_webhooks=False)
    await ingestion_factory(
        **{**FAST, "allowed_networks": "", "webhook_retry_delays_s": "3600,3600"}
    )
    receiver: Receiver = await receivers()
    endpoint = await register(allowing, receiver.url)
    await complete_a_job(allowing)

    async def refused() -> bool:
        found = await deliveries(allowing, endpoint["id"])
        return bool(found) and found[0]["attempt_count"] >= 1

    await wait_until(refused, timeout_s=20, step_s=0.05, what="a refused attempt")
    [delivery] = await deliveries(allowing, endpoint["id"])
    assert "private, loopback" in delivery["attempts"][0]["error"]
    assert delivery["attempts"][0]["status_code"] is None
    assert delivery["status"] == "failed"
    assert delivery["attempt_count"] == 1
    assert delivery["next_attempt_at"] is None
    assert receiver.received == []


async def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(
    ingestion_factory: Callable[..., Any], receivers: Callable[..., Any]
) -> None:
    app: IngestionApp = await ingestion_factory(**{**FAST, "webhook_retry_delays_s": "0.1"})
    receiver: Receiver = await receivers("redirect")
    endpoint = await register(app, receiver.url)
    await complete_a_job(app)
    [failed] = await settled(app, endpoint["id"], "failed")
    assert [a["status_code"] for a in failed["attempts"]] == [302, 302]
    assert "redirects are not followed" in failed["attempts"][0]["error"]
    assert len(receiver.received) == 2
    assert receiver.redirected == []
