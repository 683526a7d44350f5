"""One request id and one trace follow an upload from the gateway through every service and
every event it causes, as ``make dev`` composes the system."""

from __future__ import annotations

import uuid

import httpx

from kglab_shared.bus.factory import create_bus
from kglab_shared.events import EventEnvelope
from tests.e2e.test_ingestion_flow import MARKDOWN, poll_job, sign_up
from tests.waiting import wait_until

CAUSED = ("ingestion.job.requested", "document.extracted", "document.stored")


async def test_an_upload_carries_its_request_id_and_trace_into_every_event(
    gateway: httpx.AsyncClient,
) -> None:
    auth = await sign_up(gateway)
    # An observer on the process's in-process broker, as any other consumer group would be.
    observer = create_bus("memory", None, source="kglab/test-observer")
    seen: list[EventEnvelope] = []

    async def record(envelope: EventEnvelope) -> None:
        seen.append(envelope)

    await observer.start()
    try:
        await observer.subscribe(f"observer-{uuid.uuid4().hex[:8]}", ["#"], record)
        request_id = f"req-{uuid.uuid4().hex}"
        trace_id = uuid.uuid4().hex
        upload = await gateway.post(
            "/api/v1/files",
            files={"file": ("curie.md", MARKDOWN, "text/markdown")},
            headers={
                **auth,
                "X-Request-ID": request_id,
                "traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01",
            },
        )
        assert upload.status_code == 202, upload.text
        assert upload.headers["X-Request-ID"] == request_id
        job = await poll_job(gateway, upload.json()["job_id"], auth)
        assert job["status"] == "completed", job

        def ours() -> list[EventEnvelope]:
            return [e for e in seen if e.correlation_id == request_id]

        async def all_caused() -> bool:
            return {e.type for e in ours()} >= set(CAUSED)

        await wait_until(all_caused, timeout_s=30, step_s=0.1)
    finally:
        await observer.close()

    for envelope in ours():
        assert envelope.type in CAUSED or envelope.type.startswith("document.")
        # The W3C trace context crossed HTTP (gateway -> ingestion) and every event hop.
        assert trace_id in envelope.trace.get("traceparent", ""), envelope.type
    # Events of other uploads (other tests in this process) never carry our id.
    assert all(e.correlation_id != request_id for e in seen if e not in ours())
