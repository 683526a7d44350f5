"""Workers on real RabbitMQ, PostgreSQL, GridFS and Redis, each in a process of its own: a worker
process killed (SIGKILL) mid-job loses nothing, and the job completes exactly once on the next."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from kglab_ingestion.domain import JobStatus
from kglab_ingestion.store.sql import SqlJobStore, create_engine
from kglab_shared.bus.rabbitmq import RabbitMQBus
from kglab_shared.events import (
    DOCUMENT_EXTRACTED,
    INDEXING_PARTS,
    DocumentExtracted,
    DocumentIndexed,
    EventEnvelope,
    parse_event_data,
)
from kglab_shared.identity import IDENTITY_HEADER, Identity, IdentityCodec
from tests.conftest import unique_name
from tests.contract.test_event_bus import (
    RabbitMQManagement,
    amqp_url_for_vhost,
    management_url,
)
from tests.integration.ingestion.conftest import SECRET
from tests.isolation import LOOPBACK, free_port, fresh_postgres_database
from tests.waiting import wait_until

DATA = Path(__file__).resolve().parents[2] / "data"
pytestmark = [
    pytest.mark.backend("rabbitmq"),
    pytest.mark.backend("postgres"),
    pytest.mark.backend("mongo"),
]


@pytest.fixture
async def cluster(
    tmp_path: Path, postgres_url: str, rabbitmq_url: str, mongo_url: str, redis_url: str
) -> AsyncIterator[dict[str, Any]]:
    management = RabbitMQManagement(management_url(rabbitmq_url))
    vhost = unique_name("kglab_ing")
    database_name = unique_name("kglab_ing")
    await management.create_vhost(vhost)
    try:
        async with fresh_postgres_database(postgres_url, prefix="kglab_ing") as database:
            yield {
                "management": management,
                "vhost": vhost,
                "amqp": amqp_url_for_vhost(rabbitmq_url, vhost),
                "database": database,
                "data_dir": tmp_path / "shared",
                "mongo_url": mongo_url,
                "redis_url": redis_url,
                "mongo_database": database_name,
            }
    finally:
        await management.delete_vhost(vhost)
        await management.aclose()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        await mongo.drop_database(database_name)
        await mongo.close()


def replica_env(cluster: dict[str, Any], **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KGLAB_") or key == "KGLAB_LOG_JSON"
    }
    env.update(
        {
            "KGLAB_ENVIRONMENT": "test",
            "KGLAB_DATA_DIR": str(cluster["data_dir"]),
            "KGLAB_INTERNAL_TOKEN_SECRET": SECRET,
            "KGLAB_BUS": "rabbitmq",
            "KGLAB_RABBITMQ_URL": cluster["amqp"],
            "KGLAB_STORES": "real",
            "KGLAB_POSTGRES_URL": cluster["database"],
            "KGLAB_MONGO_URL": cluster["mongo_url"],
            "KGLAB_REDIS_URL": cluster["redis_url"],
            "KGLAB_INGESTION_MONGO_DATABASE": cluster["mongo_database"],
            "KGLAB_INGESTION_LEASE_S": "1",
            "KGLAB_INGESTION_SWEEP_INTERVAL_S": "0.2",
            **extra,
        }
    )
    return env


@contextlib.asynccontextmanager
async def replica_process(cluster: dict[str, Any], **extra: str) -> AsyncIterator[Any]:
    """The ingestion service in a process of its own, as production runs it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tests.faults:ingestion_app",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--log-level",
        "warning",
        env=replica_env(cluster, **extra),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://{LOOPBACK}:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout_s=30, step_s=0.1)
            yield process, client
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_killed_worker_process_loses_nothing_on_rabbitmq(cluster: dict[str, Any]) -> None:
    codec = IdentityCodec(SECRET)
    alice = {IDENTITY_HEADER: codec.mint(Identity(user_id="user-alice"))}
    async with AsyncExitStack() as stack:
        observer = RabbitMQBus(cluster["amqp"], "kglab/test-observer")
        await observer.start()
        stack.push_async_callback(observer.close, 1.0)
        extracted: list[EventEnvelope] = []

        async def record(envelope: EventEnvelope) -> None:
            extracted.append(envelope)
            # Standing in for the document, vector and graph services: every part is done.
            data = parse_event_data(envelope)
            assert isinstance(data, DocumentExtracted)
            for part in INDEXING_PARTS:
                await observer.publish(
                    DocumentIndexed(
                        document_id=data.document_id, owner_id=data.owner_id, part=part
                    ).envelope(source="kglab/test-observer")
                )

        await observer.subscribe("observer", [DOCUMENT_EXTRACTED], record)
        jobs = SqlJobStore(create_engine(cluster["database"]))
        stack.push_async_callback(jobs.close)

        async with replica_process(cluster, KGLAB_TEST_UNIT_DELAY_S="0.3") as (
            doomed,
            client,
        ):
            response = await client.post(
                "/api/v1/files",
                files={"file": ("ten.pdf", (DATA / "ten-pages.pdf").read_bytes())},
                headers=alice,
            )
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]

            async def pages_done() -> bool:
                job = await jobs.get_any(job_id)
                return job is not None and job.units_done >= 3

            await wait_until(pages_done, timeout_s=30)
            doomed.send_signal(signal.SIGKILL)  # no goodbye: the broker requeues its message
            await doomed.wait()
        midway = await jobs.get_any(job_id)
        assert midway is not None
        assert midway.status is JobStatus.PROCESSING
        assert midway.units_done < 10

        async with replica_process(cluster) as (_, survivor):

            async def completed() -> bool:
                job = (await survivor.get(f"/api/v1/jobs/{job_id}", headers=alice)).json()
                return bool(job["status"] == "completed")

            await wait_until(completed, timeout_s=60, step_s=0.1)
            job = (await survivor.get(f"/api/v1/jobs/{job_id}", headers=alice)).json()
            assert job["attempts"] == 2
            assert job["units_done"] == 10

            async def announced() -> bool:
                return len(extracted) >= 1

            await wait_until(announced, timeout_s=15)
        # Exactly one document.extracted, whatever the redeliveries.
        assert {e.id for e in extracted} == {f"document.extracted:{job_id}"}
