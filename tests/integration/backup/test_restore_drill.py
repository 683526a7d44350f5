"""The restore drill, on the real servers: load documents, back up, destroy, restore, and find
every document, a search answer and a graph neighbour as they were; then lose the derived
stores (vectors and graph) and rebuild them from the documents.

The system runs as ``make dev`` composes it, on PostgreSQL, MongoDB wire, Neo4j and Redis (and
Qdrant Edge's shards in its data folder: no Qdrant server runs here), with data of its own: a
fresh PostgreSQL database, Mongo databases and RabbitMQ virtual host named per test, Neo4j
scoped to the test's users (``KGLAB_BACKUP_NEO4J_OWNERS``). Nothing another test or engineer
made is backed up, dropped or restored. Backup and restore run as an operator runs them:
``python -m deploy.backup``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from neo4j import AsyncGraphDatabase
from pymongo import AsyncMongoClient
from sqlalchemy.engine import make_url

from tests.conftest import unique_name
from tests.contract.test_event_bus import RabbitMQManagement, management_url
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.backend("postgres"),
    pytest.mark.backend("mongo"),
    pytest.mark.backend("neo4j"),
    pytest.mark.backend("redis"),
    pytest.mark.backend("rabbitmq"),
    pytest.mark.timeout(900),
]

REPO_ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "a long enough passphrase"
ADMIN_EMAIL = "drill-admin@example.com"
DOCUMENTS = {
    "curie.md": b"# The Curie laboratory\n\nMarie Curie worked in Paris with Pierre Curie. "
    b"Marie Curie studied radioactivity at the University of Paris.\n",
    "darwin.md": b"# Voyage\n\nCharles Darwin sailed on the Beagle with Robert FitzRoy. "
    b"Charles Darwin collected finches in the Galapagos.\n",
    "lovelace.md": b"# Engines\n\nAda Lovelace wrote notes on the Analytical Engine of "
    b"Charles Babbage. Ada Lovelace described loops in London.\n",
}


def _load_composition() -> Any:
    spec = importlib.util.spec_from_file_location("kglab_dev_run", REPO_ROOT / "deploy/dev/run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def running_system(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The whole system in this process on ``env``, stopped on exit (its data stays)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        app: FastAPI = _load_composition().build()
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway", timeout=60
            ) as client:
                yield client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def sign_in(gateway: httpx.AsyncClient, email: str, *, register: bool) -> dict[str, str]:
    if register:
        made = await gateway.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text
    login = await gateway.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def snapshot(gateway: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    """What the drill compares: every document and its chunks, a search answer, a neighbourhood."""
    listing = await gateway.get("/api/v1/documents?limit=100", headers=auth)
    assert listing.status_code == 200, listing.text
    documents = {}
    for item in listing.json()["items"]:
        chunks = await gateway.get(f"/api/v1/documents/{item['id']}/chunks", headers=auth)
        documents[item["id"]] = {"document": item, "chunks": chunks.json()["items"]}
    return {
        "documents": documents,
        "search": await search(gateway, auth),
        "neighbours": await neighbours(gateway, auth),
    }


async def search(gateway: httpx.AsyncClient, auth: dict[str, str]) -> list[tuple[str, str]]:
    answer = await gateway.get("/api/v1/search", params={"q": "Darwin finches"}, headers=auth)
    assert answer.status_code == 200, answer.text
    return [(hit["document_id"], hit["chunk_id"]) for hit in answer.json()["results"]]


async def neighbours(gateway: httpx.AsyncClient, auth: dict[str, str]) -> list[str] | None:
    found = await gateway.get("/api/v1/graph/entities", params={"q": "Marie Curie"}, headers=auth)
    assert found.status_code == 200, found.text
    entities = [e for e in found.json()["results"] if e["name"] == "Marie Curie"]
    if not entities:
        return None
    around = await gateway.get(
        f"/api/v1/graph/entities/{entities[0]['id']}/neighbors", headers=auth
    )
    assert around.status_code == 200, around.text
    return sorted(node["id"] for node in around.json()["neighbors"])


def backup_tool(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.backup", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


async def test_back_up_destroy_restore_then_rebuild_the_derived_stores(
    tmp_path: Path,
    postgres_url: str,
    mongo_url: str,
    neo4j_url: str,
    redis_url: str,
    rabbitmq_url: str,
) -> None:
    tag = uuid.uuid4().hex[:12]
    database = f"kglab_drill_{tag}"
    mongo_prefix = f"kglab_drill_{tag}"
    vhost = unique_name("kglab_drill")
    data_dir = tmp_path / "data"
    server = make_url(postgres_url)
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    database_url = server.set(database=database).render_as_string(hide_password=False)
    system_env = {
        "KGLAB_ENVIRONMENT": "development",
        "KGLAB_DATA_DIR": str(data_dir),
        "KGLAB_BUS": "memory",
        "KGLAB_STORES": "real",
        "KGLAB_POSTGRES_URL": database_url,
        "KGLAB_REDIS_URL": redis_url,
        "KGLAB_NEO4J_URL": neo4j_url,
        "KGLAB_MONGO_URL": mongo_url,
        "KGLAB_DOCUMENT_MONGO_DATABASE": f"{mongo_prefix}_doc",
        "KGLAB_INGESTION_MONGO_DATABASE": f"{mongo_prefix}_ing",
        "KGLAB_VECTOR_STORES": "embedded",
        "KGLAB_VECTOR_CACHE": "redis",
        "KGLAB_AUTH_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "KGLAB_AUTH_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
        "KGLAB_GATEWAY_API_KEY_CACHE_S": "0",
    }
    if clamd := os.environ.get("KGLAB_CLAMD_URL"):
        system_env["KGLAB_CLAMD_URL"] = clamd

    def with_cache_prefix(prefix: str) -> dict[str, str]:
        # Each start gets fresh Redis keys: a cached search answer must not stand in for the
        # restored vectors.
        keys = f"test:drill:{tag}:{prefix}:"
        return {
            **system_env,
            "KGLAB_AUTH_REDIS_KEY_PREFIX": keys,
            "KGLAB_GATEWAY_REDIS_KEY_PREFIX": keys,
            "KGLAB_VECTOR_REDIS_PREFIX": f"{keys}vector:",
        }

    management = RabbitMQManagement(management_url(rabbitmq_url))
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    neo4j_parts = make_url(neo4j_url.replace("bolt://", "postgresql://"))
    graph = AsyncGraphDatabase.driver(
        f"bolt://{neo4j_parts.host}:{neo4j_parts.port or 7687}",
        auth=(neo4j_parts.username or "neo4j", neo4j_parts.password or ""),
    )
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await management.create_vhost(vhost)
    owners: list[str] = []
    try:
        # -- load documents ---------------------------------------------------------------
        async with running_system(with_cache_prefix("load")) as gateway:
            auth = await sign_in(gateway, f"drill-{tag}@example.com", register=True)
            me = (await gateway.get("/api/v1/auth/me", headers=auth)).json()
            owners.append(me["id"])
            for name, body in DOCUMENTS.items():
                upload = await gateway.post(
                    "/api/v1/files", files={"file": (name, body, "text/markdown")}, headers=auth
                )
                assert upload.status_code == 202, upload.text
                job_id = upload.json()["job_id"]

                async def done(job_id: str = job_id) -> bool:
                    job = (await gateway.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
                    assert job["status"] != "failed", job
                    return bool(job["status"] == "completed")

                await wait_until(done, timeout_s=120, step_s=0.2)
            before = await snapshot(gateway, auth)
        assert len(before["documents"]) == 3
        assert before["search"], "the search found nothing to compare"
        assert before["neighbours"], "Marie Curie has no neighbours to compare"
        # A queue in the drill's own virtual host stands for the definitions of the bus.
        await management._client.put(
            f"/api/queues/{vhost}/kglab.drill", json={"durable": True, "arguments": {}}
        )

        # -- back up ----------------------------------------------------------------------
        backup_env = {
            **system_env,
            "KGLAB_BACKUP_DIR": str(tmp_path / "backups"),
            "KGLAB_BACKUP_IDENTITY_FILE": str(tmp_path / "backup-identity.txt"),
            "KGLAB_BACKUP_POSTGRES_DATABASES": database,
            "KGLAB_BACKUP_MONGO_DATABASES": f"{mongo_prefix}_doc,{mongo_prefix}_ing",
            "KGLAB_BACKUP_NEO4J_OWNERS": ",".join(owners),
            "KGLAB_BACKUP_QDRANT_PATH": str(data_dir / "qdrant"),
            "KGLAB_BACKUP_RABBITMQ_MANAGEMENT_URL": management_url(rabbitmq_url),
            "KGLAB_BACKUP_RABBITMQ_VHOST": vhost,
        }
        backup_set = Path(backup_tool(backup_env, "backup").strip().splitlines()[-1])
        manifest = json.loads((backup_set / "manifest.json").read_text())
        assert set(manifest["stores"]) == {"postgres", "mongo", "neo4j", "qdrant", "rabbitmq"}
        for entry in manifest["stores"].values():
            assert len(entry["sha256"]) == 64
            # Encrypted at rest: no document text and no signing key in the clear.
            assert b"Galapagos" not in (backup_set / entry["archive"]).read_bytes()

        # -- destroy ----------------------------------------------------------------------
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        for suffix in ("_doc", "_ing"):
            await mongo.drop_database(f"{mongo_prefix}{suffix}")
        await graph.execute_query("MATCH (n) WHERE n.owner IN $o DETACH DELETE n", o=owners)
        shutil.rmtree(data_dir / "qdrant")
        await management.delete_vhost(vhost)

        # -- restore ----------------------------------------------------------------------
        restored = backup_tool(backup_env, "restore", str(backup_set))
        assert "restored postgres, mongo, neo4j, qdrant, rabbitmq" in restored
        async with running_system(with_cache_prefix("restored")) as gateway:
            auth = await sign_in(gateway, f"drill-{tag}@example.com", register=False)
            after = await snapshot(gateway, auth)
        assert after == before
        queue = await management.queue(vhost, "kglab.drill")
        assert queue["durable"] is True

        # -- lose the derived stores and rebuild them from the documents ----------------------
        await graph.execute_query("MATCH (n) WHERE n.owner IN $o DETACH DELETE n", o=owners)
        shutil.rmtree(data_dir / "qdrant")
        async with running_system(with_cache_prefix("rebuild")) as gateway:
            auth = await sign_in(gateway, f"drill-{tag}@example.com", register=False)
            assert await search(gateway, auth) == []
            assert await neighbours(gateway, auth) is None
            admin_auth = await sign_in(gateway, ADMIN_EMAIL, register=False)
            started = await gateway.post(
                "/api/v1/admin/rebuilds", json={"owner_id": owners[0]}, headers=admin_auth
            )
            assert started.status_code == 202, started.text
            rebuild_id = started.json()["id"]

            async def rebuilt() -> bool:
                progress = await gateway.get(
                    f"/api/v1/admin/rebuilds/{rebuild_id}", headers=admin_auth
                )
                if progress.json()["status"] != "completed":
                    return False
                return await search(gateway, auth) == before["search"] and (
                    await neighbours(gateway, auth) == before["neighbours"]
                )

            await wait_until(rebuilt, timeout_s=120, step_s=0.5)
            assert (await snapshot(gateway, auth)) == before
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        for suffix in ("_doc", "_ing"):
            await mongo.drop_database(f"{mongo_prefix}{suffix}")
        await mongo.close()
        if owners:
            await graph.execute_query("MATCH (n) WHERE n.owner IN $o DETACH DELETE n", o=owners)
        await graph.close()
        await management.delete_vhost(vhost)
        await management.aclose()
