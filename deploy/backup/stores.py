"""One adapter per store: dump it into a folder, restore it from one, say its server's version.

Each uses the store's own tool where one exists on the machine (``pg_dump``/``pg_restore`` of
the server's Debian packages, Qdrant's snapshot API, RabbitMQ's definitions export) and the
store's own protocol where none does (MongoDB wire: no ``mongodump`` in any registry reachable
here; Neo4j Community: ``neo4j-admin dump`` needs the database offline). Why: adr/0021.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx

from .config import NOT_EMBEDDED_DATA, BackupSettings

#: Rows per Neo4j write transaction and MongoDB insert on restore.
BATCH = 2000


class BackupError(RuntimeError):
    """A store could not be backed up or restored; the message says which and why."""


class Store(Protocol):
    name: str

    def version(self) -> str:
        """The server's version (or the embedded format's)."""

    def dump(self, into: Path) -> dict[str, Any]:
        """Write the store's data under ``into``; return counts worth putting in the manifest."""

    def restore(self, source: Path) -> dict[str, Any]:
        """Replace the store's data with what ``source`` holds; return counts."""


def _run(args: list[str], *, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
        )
    except FileNotFoundError:
        raise BackupError(f"{args[0]} is not installed (make servers installs it)") from None
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


# ------------------------------------------------------------------------------ PostgreSQL


def pg_tool(name: str) -> str:
    """The tool from the newest installed server version (pg_dump must not be older than the
    server it reads); ``PATH`` otherwise."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return name


@dataclass
class PostgresStore:
    url: str
    databases: list[str]
    base_backup: bool = False
    name: str = "postgres"

    def _connection(self, database: str) -> tuple[list[str], dict[str, str]]:
        # The password goes in the environment, never on a command line others can read.
        parts = urlsplit(self.url)
        args = ["--host", parts.hostname or "127.0.0.1", "--port", str(parts.port or 5432)]
        if parts.username:
            args += ["--username", unquote(parts.username)]
        env = {"PGPASSWORD": unquote(parts.password)} if parts.password else {}
        return [*args, "--dbname", database], env

    def _psql(self, database: str, sql: str) -> str:
        args, env = self._connection(database)
        return _run([pg_tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args,
                     "-c", sql], env=env).strip()  # fmt: skip

    def version(self) -> str:
        return self._psql("postgres", "SHOW server_version")

    def dump(self, into: Path) -> dict[str, Any]:
        sizes = {}
        for database in self.databases:
            args, env = self._connection(database)
            target = into / f"{database}.pgdump"
            _run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                  "--file", str(target), *args], env=env)  # fmt: skip
            sizes[database] = target.stat().st_size
        details: dict[str, Any] = {
            "databases": sizes,
            "pg_dump": _run([pg_tool("pg_dump"), "--version"]).strip(),
        }
        if self.base_backup:
            # The cluster as files (tar, gzip) with the WAL it needs to be consistent: the
            # base a point-in-time restore replays the archived WAL onto. Restored by hand,
            # with the server stopped (docs/runbook.md); restore_set leaves it alone.
            args, env = self._connection("postgres")
            base = into / "base-backup"
            _run([pg_tool("pg_basebackup"), *args[:-2], "--pgdata", str(base), "--format=tar",
                  "--gzip", "--wal-method=fetch", "--checkpoint=fast"], env=env)  # fmt: skip
            label = base / "backup_manifest"
            details["base_backup_bytes"] = sum(f.stat().st_size for f in base.iterdir())
            details["base_backup_manifest"] = label.exists()
        return details

    def restore(self, source: Path) -> dict[str, Any]:
        restored = []
        for dump in sorted(source.glob("*.pgdump")):
            database = dump.stem
            quoted = '"' + database.replace('"', '""') + '"'
            # The database as it was: dropped and made again, so nothing written after the
            # backup survives beside it (the services are stopped during a restore).
            self._psql("postgres", f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
            self._psql("postgres", f"CREATE DATABASE {quoted}")
            args, env = self._connection(database)
            _run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                  "--single-transaction", *args, str(dump)], env=env)  # fmt: skip
            restored.append(database)
        return {"databases": restored}


# ------------------------------------------------------------------------------ MongoDB wire


@dataclass
class MongoStore:
    """Each collection as mongodump lays it out (``DB/COLL.bson``: the raw BSON documents one
    after another, ``DB/COLL.metadata.json``: its indexes), so mongorestore reads it too."""

    url: str
    databases: list[str]
    name: str = "mongo"

    def _client(self) -> Any:
        from bson.codec_options import CodecOptions
        from bson.raw_bson import RawBSONDocument
        from pymongo import MongoClient

        options: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
        return MongoClient(self.url, document_class=RawBSONDocument, type_registry=None,
                           serverSelectionTimeoutMS=10_000), options  # fmt: skip

    def version(self) -> str:
        client, _ = self._client()
        try:
            return str(client.server_info().get("version"))
        finally:
            client.close()

    def dump(self, into: Path) -> dict[str, Any]:
        from bson import json_util

        client, options = self._client()
        counts: dict[str, int] = {}
        try:
            for database in self.databases:
                folder = into / database
                folder.mkdir(parents=True)
                db = client.get_database(database, codec_options=options)
                for collection in sorted(db.list_collection_names()):
                    count = 0
                    with (folder / f"{collection}.bson").open("wb") as out:
                        for document in db[collection].find({}, sort=[("_id", 1)]):
                            out.write(document.raw)
                            count += 1
                    indexes = [
                        json.loads(json_util.dumps(dict(index.items())))
                        for index in db[collection].list_indexes()
                    ]
                    metadata = {"indexes": indexes, "collectionName": collection}
                    (folder / f"{collection}.metadata.json").write_text(json.dumps(metadata))
                    counts[f"{database}.{collection}"] = count
        finally:
            client.close()
        return {"documents": counts}

    def restore(self, source: Path) -> dict[str, Any]:
        from bson import decode_file_iter, json_util
        from bson.raw_bson import RawBSONDocument
        from pymongo import IndexModel

        client, options = self._client()
        counts: dict[str, int] = {}
        try:
            for folder in sorted(p for p in source.iterdir() if p.is_dir()):
                client.drop_database(folder.name)
                db = client.get_database(folder.name, codec_options=options)
                for dump in sorted(folder.glob("*.bson")):
                    collection = db[dump.stem]
                    metadata = json.loads((folder / f"{dump.stem}.metadata.json").read_text())
                    models = []
                    for index in metadata["indexes"]:
                        spec = json_util.loads(json.dumps(index))
                        if spec["name"] == "_id_":
                            continue
                        keys = list(spec.pop("key").items())
                        spec.pop("v", None)
                        spec.pop("ns", None)
                        models.append(IndexModel(keys, **spec))
                    db.create_collection(dump.stem)
                    if models:
                        collection.create_indexes(models)
                    count, batch = 0, []
                    with dump.open("rb") as stream:
                        for document in decode_file_iter(stream, options):
                            batch.append(RawBSONDocument(document.raw))
                            if len(batch) >= BATCH:
                                collection.insert_many(batch, ordered=True)
                                count, batch = count + len(batch), []
                    if batch:
                        collection.insert_many(batch, ordered=True)
                        count += len(batch)
                    counts[f"{folder.name}.{dump.stem}"] = count
        finally:
            client.close()
        return {"documents": counts}


# ------------------------------------------------------------------------------ Neo4j


def _encode_value(value: Any) -> Any:
    """JSON for the temporal property types Neo4j has and JSON lacks (the graph service's
    migration markers carry a ``datetime()``), tagged so a restore writes the same type back."""
    from neo4j.time import Date, DateTime, Time

    for kind in (DateTime, Date, Time):
        if isinstance(value, kind):
            return {"$neo4j": kind.__name__, "iso": value.iso_format()}
    raise BackupError(f"neo4j: a property of type {type(value).__name__} cannot be exported")


def _decode_value(item: dict[str, Any]) -> Any:
    from neo4j.time import Date, DateTime, Time

    kinds: dict[str, Any] = {"DateTime": DateTime, "Date": Date, "Time": Time}
    if "$neo4j" in item:
        return kinds[item["$neo4j"]].from_iso_format(item["iso"])
    return item


def _labels(labels: list[str]) -> str:
    return "".join(":`" + label.replace("`", "``") + "`" for label in labels)


#: Put on restored nodes until their relationships are made, then removed.
_RESTORE_LABEL = "KglabRestoring"


@dataclass
class Neo4jStore:
    """Every node and relationship (labels, type, properties) as JSON lines, read online with
    plain Cypher; restored with batched ``CREATE``s. ``owners`` scopes both to those owners'
    nodes (the graph service owner-scopes every node)."""

    url: str
    database: str
    owners: list[str]
    name: str = "neo4j"

    def _driver(self) -> Any:
        from neo4j import GraphDatabase

        parts = urlsplit(self.url)
        address = f"{parts.scheme}://{parts.hostname}:{parts.port or 7687}"
        auth = (unquote(parts.username or "neo4j"), unquote(parts.password or ""))
        return GraphDatabase.driver(address, auth=auth)

    def _scope(self, variable: str) -> str:
        return f"WHERE {variable}.owner IN $owners" if self.owners else ""

    def version(self) -> str:
        with self._driver() as driver:
            records, _, _ = driver.execute_query(
                "CALL dbms.components() YIELD versions, edition "
                "RETURN versions[0] + ' ' + edition AS v",
                database_=self.database,
            )
            return str(records[0]["v"])

    def dump(self, into: Path) -> dict[str, Any]:
        nodes = relationships = 0
        with self._driver() as driver, driver.session(database=self.database) as session:
            with (into / "nodes.jsonl").open("w") as out:
                result = session.run(
                    f"MATCH (n) {self._scope('n')} "
                    "RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS props",
                    owners=self.owners,
                )
                for record in result:
                    out.write(json.dumps(record.data(), default=_encode_value) + "\n")
                    nodes += 1
            with (into / "relationships.jsonl").open("w") as out:
                result = session.run(
                    f"MATCH (a)-[r]->(b) {self._scope('a')} "
                    "RETURN elementId(a) AS start, elementId(b) AS end, type(r) AS type, "
                    "properties(r) AS props",
                    owners=self.owners,
                )
                for record in result:
                    out.write(json.dumps(record.data(), default=_encode_value) + "\n")
                    relationships += 1
        return {"nodes": nodes, "relationships": relationships, "owners": self.owners or "all"}

    def restore(self, source: Path) -> dict[str, Any]:
        nodes = relationships = 0
        with self._driver() as driver, driver.session(database=self.database) as session:
            session.run(
                f"MATCH (n) {self._scope('n')} "
                "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 2000 ROWS",
                owners=self.owners,
            ).consume()
            session.run(
                f"CREATE INDEX kglab_restoring IF NOT EXISTS FOR (n:{_RESTORE_LABEL}) "
                "ON (n.kglab_restore_id)"
            ).consume()
            session.run("CALL db.awaitIndexes(300)").consume()
            by_labels: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
            for row in _lines(source / "nodes.jsonl"):
                by_labels[tuple(row["labels"])].append({"id": row["id"], "props": row["props"]})
            for labels, rows in by_labels.items():
                query = (
                    f"UNWIND $rows AS row CREATE (n{_labels([*labels, _RESTORE_LABEL])}) "
                    "SET n = row.props, n.kglab_restore_id = row.id"
                )
                for batch in _batches(rows):
                    session.execute_write(lambda tx, q=query, b=batch: tx.run(q, rows=b).consume())
                    nodes += len(batch)
            by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in _lines(source / "relationships.jsonl"):
                by_type[row["type"]].append(row)
            for rel_type, rows in by_type.items():
                query = (
                    "UNWIND $rows AS row "
                    f"MATCH (a:{_RESTORE_LABEL} {{kglab_restore_id: row.start}}) "
                    f"MATCH (b:{_RESTORE_LABEL} {{kglab_restore_id: row.end}}) "
                    f"CREATE (a)-[r:`{rel_type.replace('`', '``')}`]->(b) SET r = row.props"
                )
                for batch in _batches(rows):
                    session.execute_write(lambda tx, q=query, b=batch: tx.run(q, rows=b).consume())
                    relationships += len(batch)
            session.run(
                f"MATCH (n:{_RESTORE_LABEL}) CALL (n) {{ REMOVE n:{_RESTORE_LABEL}, "
                "n.kglab_restore_id } IN TRANSACTIONS OF 5000 ROWS"
            ).consume()
        return {"nodes": nodes, "relationships": relationships}


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as stream:
        for line in stream:
            yield json.loads(line, object_hook=_decode_value)


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


# ------------------------------------------------------------------------------ Qdrant


@dataclass
class QdrantServerStore:
    """Qdrant's own snapshots, one per collection, downloaded into the set and uploaded back.
    No Qdrant server runs on the development and CI machines: this path is untested there."""

    url: str
    api_key: str | None
    name: str = "qdrant"

    def _client(self) -> httpx.Client:
        headers = {"api-key": self.api_key} if self.api_key else {}
        return httpx.Client(base_url=self.url.rstrip("/"), headers=headers, timeout=600)

    def version(self) -> str:
        with self._client() as client:
            return str(client.get("/").raise_for_status().json().get("version"))

    def dump(self, into: Path) -> dict[str, Any]:
        with self._client() as client:
            collections = [
                c["name"]
                for c in client.get("/collections")
                .raise_for_status()
                .json()["result"]["collections"]
            ]
            aliases = client.get("/aliases").raise_for_status().json()["result"]["aliases"]
            (into / "aliases.json").write_text(json.dumps(aliases))
            for collection in collections:
                path = f"/collections/{quote(collection, safe='')}/snapshots"
                snapshot = client.post(path, params={"wait": "true"}).raise_for_status()
                name = snapshot.json()["result"]["name"]
                with client.stream("GET", f"{path}/{quote(name, safe='')}") as response:
                    response.raise_for_status()
                    with (into / f"{collection}.snapshot").open("wb") as out:
                        for part in response.iter_bytes():
                            out.write(part)
                client.delete(f"{path}/{quote(name, safe='')}")
        return {"collections": collections}

    def restore(self, source: Path) -> dict[str, Any]:
        restored = []
        with self._client() as client:
            for snapshot in sorted(source.glob("*.snapshot")):
                path = f"/collections/{quote(snapshot.stem, safe='')}/snapshots/upload"
                with snapshot.open("rb") as stream:
                    client.post(
                        path,
                        params={"wait": "true", "priority": "snapshot"},
                        files={"snapshot": (snapshot.name, stream)},
                    ).raise_for_status()
                restored.append(snapshot.stem)
            actions = [
                {
                    "create_alias": {
                        "alias_name": a["alias_name"],
                        "collection_name": a["collection_name"],
                    }
                }
                for a in json.loads((source / "aliases.json").read_text())
            ]
            if actions:
                client.post("/collections/aliases", json={"actions": actions}).raise_for_status()
        return {"collections": restored}


@dataclass
class FolderStore:
    """A folder of files copied whole: Qdrant Edge's shards, or ``make dev``'s embedded stores.
    The service that writes them must be stopped (docs/runbook.md)."""

    name: str
    path: Path
    kind: str
    skip: frozenset[str] = frozenset()

    def version(self) -> str:
        return self.kind

    def dump(self, into: Path) -> dict[str, Any]:
        if not self.path.is_dir():
            raise BackupError(f"{self.name}: {self.path} is not a folder")
        files = 0
        with tarfile.open(into / "files.tar", "w") as archive:
            for entry in sorted(self.path.iterdir()):
                if entry.name in self.skip:
                    continue
                archive.add(entry, arcname=entry.name)
                files += sum(1 for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else 1
        return {"path": str(self.path), "files": files}

    def restore(self, source: Path) -> dict[str, Any]:
        with tarfile.open(source / "files.tar") as archive:
            names = {m.name.split("/", 1)[0] for m in archive.getmembers()}
            self.path.mkdir(parents=True, exist_ok=True)
            for name in names:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            archive.extractall(self.path, filter="data")
        return {"path": str(self.path), "entries": sorted(names)}


# ------------------------------------------------------------------------------ RabbitMQ


@dataclass
class RabbitDefinitionsStore:
    """The virtual host's definitions (exchanges, queues, bindings, policies) from the
    management API. Messages are not part of a backup: an event waiting in a queue is redone
    from its source (the outboxes, or ``make rebuild``)."""

    management_url: str
    vhost: str
    name: str = "rabbitmq"

    def _client(self) -> httpx.Client:
        parts = urlsplit(self.management_url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
        return httpx.Client(base_url=base, auth=auth, timeout=60)

    def version(self) -> str:
        with self._client() as client:
            return str(client.get("/api/overview").raise_for_status().json()["rabbitmq_version"])

    def dump(self, into: Path) -> dict[str, Any]:
        with self._client() as client:
            definitions = client.get(f"/api/definitions/{quote(self.vhost, safe='')}")
            body = definitions.raise_for_status().json()
        (into / "definitions.json").write_text(json.dumps(body, indent=1))
        return {"vhost": self.vhost, "queues": len(body.get("queues", []))}

    def restore(self, source: Path) -> dict[str, Any]:
        body = json.loads((source / "definitions.json").read_text())
        with self._client() as client:
            vhost = quote(self.vhost, safe="")
            client.put(f"/api/vhosts/{vhost}").raise_for_status()
            client.post(f"/api/definitions/{vhost}", json=body).raise_for_status()
        return {"vhost": self.vhost, "queues": len(body.get("queues", []))}


def configured_stores(settings: BackupSettings) -> list[Store]:
    """Every store the settings name, in the order they are dumped: the relational state and
    the documents first, the stores derived from the documents after them."""
    stores: list[Store] = []
    if settings.postgres_url:
        stores.append(
            PostgresStore(
                settings.postgres_url,
                settings.postgres_database_names,
                settings.postgres_base_backup,
            )
        )
    if settings.mongo_url:
        stores.append(MongoStore(settings.mongo_url, settings.mongo_database_names))
    if settings.neo4j_url:
        stores.append(
            Neo4jStore(settings.neo4j_url, settings.neo4j_database, settings.neo4j_owner_ids)
        )
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        stores.append(QdrantServerStore(settings.qdrant_url, key))
    elif settings.qdrant_path is not None:
        stores.append(FolderStore("qdrant", settings.qdrant_path, "qdrant edge shards"))
    elif settings.uses_servers and (settings.data_dir / "qdrant").is_dir():
        # No Qdrant server: the vector service keeps Qdrant Edge's shards in its data folder
        # (KGLAB_VECTOR_QDRANT_LOCAL_PATH's default, under KGLAB_DATA_DIR).
        local = settings.data_dir / "qdrant"
        stores.append(FolderStore("qdrant", local, "qdrant edge shards"))
    if settings.rabbitmq_management_url:
        stores.append(
            RabbitDefinitionsStore(settings.rabbitmq_management_url, settings.rabbitmq_vhost)
        )
    if not settings.uses_servers:
        stores.append(
            FolderStore("embedded", settings.data_dir, "embedded stores", NOT_EMBEDDED_DATA)
        )
    return stores
