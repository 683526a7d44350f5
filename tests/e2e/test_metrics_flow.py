"""The domain metrics an on-call engineer reads (issue 15), after one upload through the gateway
as ``make dev`` composes the system (one process, one registry): each stage's time, the
document and its chunks, the search cache's hits and misses, and the gateway's requests under
the template of the route that served them."""

from __future__ import annotations

import httpx

from kglab_shared.metrics import REGISTRY
from tests.e2e.test_ingestion_flow import MARKDOWN, poll_job, sign_up
from tests.waiting import wait_until

STAGES = ("queued", "extracting", "storing", "embedding", "graphing")


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_an_upload_moves_the_pipeline_metrics(gateway: httpx.AsyncClient) -> None:
    stage_counts = {
        stage: value("kglab_ingestion_stage_duration_seconds_count", {"stage": stage})
        for stage in STAGES
    }
    documents = value("kglab_documents_stored_total")
    chunks = value("kglab_chunks_stored_total")
    completed = value("kglab_ingestion_jobs_finished_total", {"status": "completed"})
    job_route = {
        "service": "gateway",
        "method": "GET",
        "route": "/api/v1/jobs/{job_id}",
        "status": "200",
    }
    job_reads = value("kglab_http_requests_total", job_route)
    misses = value("kglab_cache_requests_total", {"cache": "search", "result": "miss"})
    hits = value("kglab_cache_requests_total", {"cache": "search", "result": "hit"})

    auth = await sign_up(gateway)
    upload = await gateway.post(
        "/api/v1/files", files={"file": ("curie.md", MARKDOWN, "text/markdown")}, headers=auth
    )
    assert upload.status_code == 202, upload.text
    job = await poll_job(gateway, upload.json()["job_id"], auth)
    assert job["status"] == "completed", job

    for stage in STAGES:
        after = value("kglab_ingestion_stage_duration_seconds_count", {"stage": stage})
        assert after == stage_counts[stage] + 1, stage
    assert value("kglab_documents_stored_total") == documents + 1
    assert value("kglab_chunks_stored_total") >= chunks + 1

    async def counted_completed() -> bool:
        finished = value("kglab_ingestion_jobs_finished_total", {"status": "completed"})
        return finished == completed + 1

    await wait_until(counted_completed, timeout_s=10, step_s=0.05)
    # Polled through the gateway's catch-all proxy, counted under the service's template.
    assert value("kglab_http_requests_total", job_route) > job_reads

    for _ in range(2):
        search = await gateway.get("/api/v1/search", params={"q": "Curie radium"}, headers=auth)
        assert search.status_code == 200, search.text
    assert value("kglab_cache_requests_total", {"cache": "search", "result": "miss"}) == misses + 1
    assert value("kglab_cache_requests_total", {"cache": "search", "result": "hit"}) == hits + 1
