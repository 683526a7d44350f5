"""Faults in the deployed topology, each bounded in time: a consumer killed with SIGKILL in the
middle of a stream of uploads, a RabbitMQ restart, a PostgreSQL restart. Afterwards every
accepted file is stored exactly once in every store: none lost, none duplicated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from tests.deployed.conftest import SETTLE_TIMEOUT_S, Deployment, User
from tests.waiting import wait_until

FILES = 12
TEXT = (
    "# Report {n} {tag}\n\n"
    "Ada Lovelace wrote to Charles Babbage from London about the Analytical Engine. "
    "The engine in report {n} was built in Manchester by the Royal Society.\n\n"
    "## Details {tag}\n\nIdentifier {tag} appears only in this file, number {n}.\n"
)


async def upload_stream(user: User, fault: Callable[[], None]) -> dict[str, str]:
    """Upload :data:`FILES` files; apply ``fault`` once the first job has finished, while the
    others are in flight; return each job id with the tag only its file holds."""
    jobs: dict[str, str] = {}
    for n in range(FILES):
        tag = uuid.uuid4().hex
        jobs[await user.upload(f"report-{n}.md", TEXT.format(n=n, tag=tag).encode())] = tag
    await user.finished(next(iter(jobs)))
    await asyncio.to_thread(fault)
    return jobs


async def assert_each_stored_once(deployment: Deployment, user: User, jobs: dict[str, str]) -> None:
    finished = [await user.finished(job, timeout_s=SETTLE_TIMEOUT_S) for job in jobs]

    async def whole_again() -> bool:
        # One replica per service: while the killed one restarts, its routes answer 503.
        return (await user.client.get("/ready")).status_code == 200

    await wait_until(whole_again, timeout_s=SETTLE_TIMEOUT_S, step_s=0.5)
    assert [job["status"] for job in finished] == ["completed"] * FILES, finished
    document_ids = {job["document_id"] for job in finished}
    assert len(document_ids) == FILES, "each accepted file is its own document"

    chunks = 0
    for job in finished:
        page = await user.get(f"/api/v1/documents/{job['document_id']}/chunks", limit=100)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len({item["id"] for item in items}) == len(items)
        chunks += len(items)
        search = await user.get("/api/v1/search", q=f"Identifier {jobs[job['job_id']]}", limit=50)
        assert search.status_code == 200, search.text
        hits = [hit["chunk_id"] for hit in search.json()["results"]]
        assert job["document_id"] in {hit["document_id"] for hit in search.json()["results"]}
        assert len(hits) == len(set(hits)), "a chunk is indexed once"

    async def settled() -> dict[str, int]:
        # Deliveries redone after the fault may still be landing: wait for the counts to stop
        # moving, then hold them to exactly one copy each.
        previous: dict[str, int] = {}
        for _ in range(int(SETTLE_TIMEOUT_S)):
            current = deployment.counts(user.id)
            if current == previous:
                return current
            previous = current
            await asyncio.sleep(1.0)
        return previous

    stored = await settled()
    assert stored["mongo_documents"] == FILES, stored
    assert stored["mongo_chunks"] == chunks, stored
    assert stored["neo4j_document"] == FILES, stored
    assert stored["neo4j_chunk"] == chunks, stored
    if "qdrant_points" in stored:
        assert stored["qdrant_points"] == chunks, stored


@pytest.mark.timeout(SETTLE_TIMEOUT_S * 2)
@pytest.mark.parametrize("service", ["ingestion", "document", "vector", "graph"])
async def test_a_consumer_killed_mid_stream_loses_and_duplicates_nothing(
    deployment: Deployment, user: User, service: str
) -> None:
    jobs = await upload_stream(user, lambda: deployment.kill(service))
    await assert_each_stored_once(deployment, user, jobs)


@pytest.mark.timeout(SETTLE_TIMEOUT_S * 2)
@pytest.mark.parametrize("server", ["rabbitmq", "postgres"])
async def test_a_server_restart_mid_stream_loses_and_duplicates_nothing(
    deployment: Deployment, user: User, server: str
) -> None:
    jobs = await upload_stream(user, lambda: deployment.restart_server(server))
    await assert_each_stored_once(deployment, user, jobs)
