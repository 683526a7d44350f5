"""Backup and restore time at 10,000 documents, per store, as `make backup`/`make restore` do it.

Data of the bench's own on the ``make servers`` servers (every name carries a random tag; all
of it is dropped afterwards, nothing else is touched):

- PostgreSQL: a database with 10,000 job-like rows (~1 KB of JSON each) and an outbox table;
- MongoDB wire: the document service's layout (documents, chunks: 5 of ~1,000 characters per
  document, written by its own Mongo adapter) and ingestion's raw files in GridFS (10 KB each);
- Neo4j: the graph service's model for one owner: 10,000 documents, 50,000 chunks, 20,000
  entities, 50,000 PART_OF, 100,000 MENTIONS, 40,000 RELATED_TO;
- Qdrant local mode: 50,000 points of 384 dimensions with their payload (no server here);
- RabbitMQ: the definitions of a virtual host with the system's six queues and their DLQs.

It times ``create_set`` (dump, tar, age-encrypt, checksum per store) and ``restore_set``
(verify, decrypt, restore) and, side by side, the dump alone against the whole step (what
encryption and checksums cost). The rebuild alternative for the derived stores is estimated
from the embedding throughput of bench/results/vector.json (it is not run: ~20 minutes).

    .venv/bin/python bench/bench_backup.py [--documents 10000] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from machine import describe

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deploy.backup.config import BackupSettings  # noqa: E402
from deploy.backup.sets import create_set, restore_set  # noqa: E402
from deploy.backup.stores import (  # noqa: E402
    FolderStore,
    MongoStore,
    Neo4jStore,
    PostgresStore,
    RabbitDefinitionsStore,
    Store,
)

RESULTS = Path(__file__).parent / "results" / "backup.json"
CHUNKS_PER_DOCUMENT = 5
WORDS = "salt harbour engine loom river ledger finch voyage radium crystal".split()


def text(rng: random.Random, characters: int) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < characters:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True)


def load_postgres(server: str, database: str, documents: int) -> None:
    psql(f"{server}/kglab", f'CREATE DATABASE "{database}"')
    psql(
        f"{server}/{database}",
        "CREATE TABLE jobs (id uuid PRIMARY KEY, owner_id text NOT NULL, status text NOT NULL, "
        "created_at timestamptz NOT NULL, detail jsonb NOT NULL);"
        "CREATE INDEX jobs_owner ON jobs (owner_id, created_at);"
        "CREATE TABLE outbox (id bigserial PRIMARY KEY, payload jsonb NOT NULL);"
        f"INSERT INTO jobs SELECT gen_random_uuid(), 'owner-' || (g % 50), 'completed', "
        "now() - g * interval '1 minute', jsonb_build_object('file', 'f' || g || '.pdf', "
        "'notes', repeat(md5(g::text), 28)) FROM generate_series(1, "
        f"{documents}) g;"
        f"INSERT INTO outbox (payload) SELECT jsonb_build_object('n', g) FROM generate_series(1, "
        f"{documents // 10}) g;",
    )


async def load_mongo(url: str, prefix: str, documents: int, rng: random.Random) -> None:
    from bson import ObjectId
    from pymongo import AsyncMongoClient, MongoClient

    from kglab_document.domain import Chunk, Document
    from kglab_document.store.mongo import (
        MongoDocumentStore,
        _chunk_to_mongo,
        _document_to_mongo,
    )

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    store = MongoDocumentStore(client[f"{prefix}_doc"])
    await store.ensure_indexes()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # The adapter's own row layout, written in bulk (its save_extracted, three round trips per
    # document, would take minutes of this bench to load what the backup reads in seconds).
    documents_rows, chunk_rows = [], []
    for i in range(documents):
        doc_id = uuid.uuid4().hex
        owner = f"owner-{i % 50}"
        document = Document(
            id=doc_id,
            owner_id=owner,
            job_id=uuid.uuid4().hex,
            title=text(rng, 40),
            media_type="application/pdf",
            source=f"f{i}.pdf",
            created_at=base + timedelta(minutes=i),
            chunk_count=CHUNKS_PER_DOCUMENT,
            metadata={"pages": 3},
            provenance={"source_name": f"f{i}.pdf", "size_bytes": 10_240},
        )
        documents_rows.append({"_id": doc_id, **_document_to_mongo(document)})
        for p in range(CHUNKS_PER_DOCUMENT):
            chunk = Chunk(doc_id, owner, f"{doc_id}-{p}", p, text(rng, 1000))
            chunk_rows.append({"_id": f"{doc_id}:{p}", **_chunk_to_mongo(chunk)})
    database = client[f"{prefix}_doc"]
    for start in range(0, len(documents_rows), 1000):
        await database["documents"].insert_many(documents_rows[start : start + 1000])
    for start in range(0, len(chunk_rows), 1000):
        await database["chunks"].insert_many(chunk_rows[start : start + 1000])
    await client.close()
    # Raw files in GridFS's own layout (fs.files + fs.chunks, one 10 KB chunk each), written
    # in bulk: GridFSBucket's two round trips a file would dominate the bench's load time.
    sync: MongoClient[dict[str, Any]] = MongoClient(url)
    raw = sync[f"{prefix}_ing"]
    payload = os.urandom(10_240)
    for start in range(0, documents, 1000):
        ids = [ObjectId() for _ in range(start, min(start + 1000, documents))]
        raw["fs.files"].insert_many(
            [
                {
                    "_id": fid,
                    "length": len(payload),
                    "chunkSize": 261_120,
                    "uploadDate": base,
                    "filename": f"raw/{start + n}",
                }
                for n, fid in enumerate(ids)
            ]
        )
        raw["fs.chunks"].insert_many([{"files_id": fid, "n": 0, "data": payload} for fid in ids])
    sync.close()


def load_neo4j(url: str, owner: str, documents: int) -> None:
    from neo4j import GraphDatabase

    store = Neo4jStore(url, "neo4j", [owner])
    driver = store._driver()
    entities = documents * 2
    with driver.session() as session:
        for start in range(0, entities, 5000):
            session.run(
                "UNWIND range($a, $b) AS i CREATE (:Entity {id: $o + ':e' + i, owner: $o, "
                "name: 'Entity ' + i, type: 'PERSON', key: 'entity ' + i})",
                a=start,
                b=min(start + 4999, entities - 1),
                o=owner,
            ).consume()
        for start in range(0, documents, 1000):
            session.run(
                "UNWIND range($a, $b) AS d "
                "CREATE (doc:Document {id: 'd' + d, owner: $o, title: 'Document ' + d}) "
                "WITH doc, d UNWIND range(0, 4) AS p "
                "CREATE (c:Chunk {id: 'd' + d + '-' + p, owner: $o, document_id: 'd' + d, "
                "position: p})-[:PART_OF]->(doc) "
                "WITH c, d, p MATCH (e:Entity {owner: $o, id: $o + ':e' + ((d * 2 + p) % $n)}) "
                "CREATE (c)-[:MENTIONS {count: 1}]->(e) "
                "WITH c, d, p MATCH (f:Entity {owner: $o, id: $o + ':e' + ((d * 2 + p + 7) % $n)}) "
                "CREATE (c)-[:MENTIONS {count: 2}]->(f)",
                a=start,
                b=min(start + 999, documents - 1),
                o=owner,
                n=entities,
            ).consume()
        session.run(
            "MATCH (e:Entity {owner: $o}) WITH e ORDER BY e.id "
            "MATCH (f:Entity {owner: $o, id: $o + ':e' + ((toInteger(substring(e.id, "
            "size($o) + 2)) + 1) % $n)}) "
            "CREATE (e)-[:RELATED_TO {weight: 2, evidence: ['d1']}]->(f)",
            o=owner,
            n=entities,
        ).consume()
        session.run(
            "MATCH (e:Entity {owner: $o}) WITH e ORDER BY e.id "
            "MATCH (f:Entity {owner: $o, id: $o + ':e' + ((toInteger(substring(e.id, "
            "size($o) + 2)) + 3) % $n)}) "
            "CREATE (e)-[:RELATED_TO {weight: 1, evidence: ['d2']}]->(f)",
            o=owner,
            n=entities,
        ).consume()
    driver.close()
    del GraphDatabase


def load_qdrant(path: Path, points: int) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(path))
    client.create_collection(
        "kglab_chunks_bench",
        vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE),
    )
    import numpy as np

    vectors = np.random.default_rng(7).random((points, 384), dtype=np.float32)
    client.upload_collection(
        "kglab_chunks_bench",
        vectors=vectors,
        payload=[{"owner_id": f"owner-{i % 50}", "text": "chunk " * 40} for i in range(points)],
        ids=list(range(points)),
        batch_size=1000,
    )
    client.close()


def load_rabbitmq(management: str, vhost: str) -> None:
    import httpx

    store = RabbitDefinitionsStore(management, vhost)
    with store._client() as client:
        client.put(f"/api/vhosts/{vhost}").raise_for_status()
        for group in (
            "ingestion",
            "ingestion.deletions",
            "ingestion.indexing",
            "document",
            "vector",
            "graph",
        ):
            for queue in (group, f"{group}.dlq"):
                client.put(
                    f"/api/queues/{vhost}/{queue}",
                    json={"durable": True, "arguments": {"x-queue-type": "quorum"}},
                ).raise_for_status()
    del httpx


def compare_encryption(size_mib: int, runs: int = 3) -> dict[str, Any]:
    """The chosen age (streaming, public key) beside cryptography's AES-GCM and Fernet (both
    one-shot, the whole archive in memory, a symmetric key) on one archive-sized file: median
    seconds of ``runs`` each, and peak extra memory of one run."""
    import statistics
    import tracemalloc

    import pyrage
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    work = Path(tempfile.mkdtemp(prefix="kglab-bench-crypto-"))
    plain = work / "plain.tar"
    block = os.urandom(1 << 20)
    with plain.open("wb") as out:
        for _ in range(size_mib):
            out.write(block)
    identity = pyrage.x25519.Identity.generate()
    aes_key, fernet = AESGCM.generate_key(bit_length=256), Fernet(Fernet.generate_key())

    def age() -> None:
        pyrage.encrypt_file(str(plain), str(work / "out.age"), [identity.to_public()])

    def aes_gcm() -> None:
        nonce = os.urandom(12)
        (work / "out.gcm").write_bytes(
            nonce + AESGCM(aes_key).encrypt(nonce, plain.read_bytes(), None)
        )

    def fernet_token() -> None:
        (work / "out.fernet").write_bytes(fernet.encrypt(plain.read_bytes()))

    result: dict[str, Any] = {"archive_mib": size_mib, "runs": runs}
    try:
        for name, encrypt in (("age", age), ("aes_gcm", aes_gcm), ("fernet", fernet_token)):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                encrypt()
                times.append(time.perf_counter() - t0)
            tracemalloc.start()
            encrypt()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            result[name] = {
                "median_s": round(statistics.median(times), 3),
                "peak_python_mib": round(peak / 2**20, 1),
            }
        for name in ("aes_gcm", "fernet"):
            result[name]["to_age"] = round(result[name]["median_s"] / result["age"]["median_s"], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    # Qdrant's local mode writes 20-40 ms a point on this machine: 50,000 would take the bench
    # 17-35 minutes to load. Its backup and restore copy files, linear in size: scaled.
    parser.add_argument("--qdrant-points", type=int, default=2_000)
    parser.add_argument(
        "--encryption-only",
        action="store_true",
        help="only compare the encryption choices (added to an existing results file)",
    )
    args = parser.parse_args()
    if args.encryption_only:
        existing = json.loads(args.output.read_text()) if args.output.exists() else {}
        existing["encryption"] = compare_encryption(160)
        existing["encryption"]["loadavg"] = os.getloadavg()
        args.output.write_text(json.dumps(existing, indent=2) + "\n")
        print(json.dumps(existing["encryption"], indent=1))
        return 0
    needed = ("KGLAB_POSTGRES_URL", "KGLAB_MONGO_URL", "KGLAB_NEO4J_URL")
    if any(not os.environ.get(v) for v in needed):
        print(f"skipped: set {', '.join(needed)} (make servers; servers.sh env)")
        return 0
    rng = random.Random(7)
    tag = uuid.uuid4().hex[:10]
    prefix = f"kglab_bench_backup_{tag}"
    owner = f"bench-backup-{tag}"
    pg_server = os.environ["KGLAB_POSTGRES_URL"].rsplit("/", 1)[0]
    management = os.environ.get("KGLAB_RABBITMQ_MANAGEMENT_URL", "")
    (REPO / ".kglab").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kglab-bench-backup-", dir=REPO / ".kglab"))
    qdrant_path = work / "qdrant"
    settings = BackupSettings(dir=work / "backups", identity_file=work / "identity.txt")
    stores: list[Store] = [
        PostgresStore(os.environ["KGLAB_POSTGRES_URL"], [prefix]),
        MongoStore(os.environ["KGLAB_MONGO_URL"], [f"{prefix}_doc", f"{prefix}_ing"]),
        Neo4jStore(os.environ["KGLAB_NEO4J_URL"], "neo4j", [owner]),
        FolderStore("qdrant", qdrant_path, "qdrant local mode"),
    ]
    if management:
        stores.append(RabbitDefinitionsStore(management, prefix))
    load_seconds: dict[str, float] = {}
    try:
        for name, load in (
            ("postgres", lambda: load_postgres(pg_server, prefix, args.documents)),
            (
                "mongo",
                lambda: asyncio.run(
                    load_mongo(os.environ["KGLAB_MONGO_URL"], prefix, args.documents, rng)
                ),
            ),
            ("neo4j", lambda: load_neo4j(os.environ["KGLAB_NEO4J_URL"], owner, args.documents)),
            ("qdrant", lambda: load_qdrant(qdrant_path, args.qdrant_points)),
            ("rabbitmq", lambda: load_rabbitmq(management, prefix) if management else None),
        ):
            t0 = time.perf_counter()
            load()
            load_seconds[name] = round(time.perf_counter() - t0, 1)
            print(f"loaded {name} in {load_seconds[name]} s", flush=True)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        path = create_set(settings, stores)
        backup_total = time.perf_counter() - t0
        manifest = json.loads((path / "manifest.json").read_text())
        load_between = os.getloadavg()
        t0 = time.perf_counter()
        restored = restore_set(settings, path, stores)
        restore_total = time.perf_counter() - t0
        load_after = os.getloadavg()
        per_store = {
            name: {
                "backup_s": entry["seconds"],
                "dump_only_s": entry["dump_seconds"],
                "tar_encrypt_checksum_s": round(entry["seconds"] - entry["dump_seconds"], 3),
                "restore_s": restored[name]["seconds"],
                "archive_mib": round(entry["bytes"] / 2**20, 2),
                "plain_mib": round(entry["plain_bytes"] / 2**20, 2),
                "version": entry["version"],
                "restore_to_backup": round(
                    restored[name]["seconds"] / max(entry["seconds"], 1e-3), 2
                ),
            }
            for name, entry in manifest["stores"].items()
        }
        encryption = compare_encryption(round(manifest["stores"]["mongo"]["plain_bytes"] / 2**20))
        vector = json.loads((REPO / "bench/results/vector.json").read_text())
        onnx = next(e for e in vector["embedding"] if "onnx" in e["model"])
        chunks = args.documents * CHUNKS_PER_DOCUMENT
        result = {
            "machine": {
                **describe(),
                "loadavg_before_backup": load_before,
                "loadavg_after_backup": load_between,
                "loadavg_after_restore": load_after,
                "note": "2 shared cores with other engineers' test runs: timings inflated",
            },
            "documents": args.documents,
            "chunks": chunks,
            "load_seconds": load_seconds,
            "backup_total_s": round(backup_total, 1),
            "restore_total_s": round(restore_total, 1),
            "per_store": per_store,
            "qdrant_points": args.qdrant_points,
            "qdrant_points_at_scale": chunks,
            "encryption": encryption,
            "neo4j_counts": {k: manifest["stores"]["neo4j"][k] for k in ("nodes", "relationships")},
            "rebuild_estimate": {
                "embedding_chunks_per_s": onnx["chunks_per_s"],
                "vectors_s": round(chunks / onnx["chunks_per_s"], 0),
                "source": "bench/results/vector.json (ONNX MiniLM here); NER not included",
            },
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{'store':<10}{'backup s':>10}{'dump s':>9}{'restore s':>11}{'MiB':>9}")
        for name, row in per_store.items():
            print(
                f"{name:<10}{row['backup_s']:>10}{row['dump_only_s']:>9}{row['restore_s']:>11}"
                f"{row['archive_mib']:>9}"
            )
        print(
            f"total: backup {result['backup_total_s']} s, restore {result['restore_total_s']} s;"
            f" rebuild of the vectors alone ~{result['rebuild_estimate']['vectors_s']:.0f} s"
        )
        print(f"written {args.output}")
    finally:
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                f"{pg_server}/kglab",
                "-c",
                f'DROP DATABASE IF EXISTS "{prefix}" WITH (FORCE)',
            ],
            check=False,
        )
        from pymongo import MongoClient

        mongo: MongoClient[dict[str, Any]] = MongoClient(os.environ["KGLAB_MONGO_URL"])
        for suffix in ("_doc", "_ing"):
            mongo.drop_database(f"{prefix}{suffix}")
        mongo.close()
        neo4j = Neo4jStore(os.environ["KGLAB_NEO4J_URL"], "neo4j", [owner])
        with neo4j._driver() as driver, driver.session() as session:
            session.run(
                "MATCH (n) WHERE n.owner = $o CALL (n) { DETACH DELETE n } "
                "IN TRANSACTIONS OF 5000 ROWS",
                o=owner,
            ).consume()
        if management:
            with RabbitDefinitionsStore(management, prefix)._client() as client:
                client.delete(f"/api/vhosts/{prefix}")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
