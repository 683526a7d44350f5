"""The Neo4j graph store (official async driver).

Model: ``(:Entity {id, name, type, key, owner})``, ``(:Document {id, owner, title})``,
``(:Chunk {id, owner, document_id, position, heading})``, ``(:Chunk)-[:MENTIONS {count}]->
(:Entity)``, ``(:Entity)-[:RELATED_TO {weight, evidence}]->(:Entity)`` stored once per pair
(lower id first) and traversed undirected, ``(:Chunk)-[:PART_OF]->(:Document)``.

Every query is parameterised and owner-scoped, and every read has a LIMIT. Depths are the only
values written into query text, and only from fixed validated integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString, cast
from urllib.parse import unquote, urlsplit

from neo4j import READ_ACCESS, AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction, Record
from neo4j.exceptions import ClientError

from kglab_graph.domain import (
    MAX_DEPTH,
    MAX_PATH_DEPTH,
    Alias,
    ChunkRef,
    DocumentMentions,
    Entity,
    EntityDetail,
    Mention,
    Path,
    RankedEntity,
    RelatedDocument,
    Relation,
    RelationCandidate,
    ScoredEntity,
    Statement,
    Subgraph,
    canonical_pair,
    entity_id,
    normalise_key,
    statement_rows,
)

FULLTEXT_INDEX = "entity_names"

#: Versioned schema migrations, recorded as ``(:SchemaMigration {version})``; each statement is
#: idempotent on its own, so two processes starting at once cannot break each other.
MIGRATIONS: list[tuple[int, list[LiteralString]]] = [
    (
        1,
        [
            "CREATE CONSTRAINT schema_migration_version IF NOT EXISTS "
            "FOR (m:SchemaMigration) REQUIRE m.version IS UNIQUE",
            "CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE",
            "CREATE CONSTRAINT entity_owner_key IF NOT EXISTS "
            "FOR (e:Entity) REQUIRE (e.owner, e.key) IS UNIQUE",
            "CREATE CONSTRAINT document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
            "CREATE CONSTRAINT chunk_id IF NOT EXISTS FOR (c:Chunk) REQUIRE c.id IS UNIQUE",
            "CREATE INDEX entity_owner_type IF NOT EXISTS FOR (e:Entity) ON (e.owner, e.type)",
            "CREATE INDEX document_owner IF NOT EXISTS FOR (d:Document) ON (d.owner)",
            "CREATE INDEX chunk_document IF NOT EXISTS FOR (c:Chunk) ON (c.document_id)",
            "CREATE INDEX related_weight IF NOT EXISTS FOR ()-[r:RELATED_TO]-() ON (r.weight)",
            "CREATE FULLTEXT INDEX entity_names IF NOT EXISTS "
            "FOR (e:Entity) ON EACH [e.name, e.owner]",
        ],
    ),
    (
        # Document and chunk ids are unique per owner, not globally: a document id one owner
        # reuses must never reach another owner's node.
        2,
        [
            "DROP CONSTRAINT document_id IF EXISTS",
            "DROP CONSTRAINT chunk_id IF EXISTS",
            "CREATE CONSTRAINT document_owner_id IF NOT EXISTS "
            "FOR (d:Document) REQUIRE (d.owner, d.id) IS UNIQUE",
            "CREATE CONSTRAINT chunk_owner_id IF NOT EXISTS "
            "FOR (c:Chunk) REQUIRE (c.owner, c.id) IS UNIQUE",
        ],
    ),
    (
        # No query reads these two (type filters apply after the walk; weights are compared on
        # relationships already expanded), yet every written batch of 1,000 entities and 1,000
        # relations added 2,000 entries to them. Dropping an index is idempotent with IF EXISTS.
        3,
        [
            "DROP INDEX related_weight IF EXISTS",
            "DROP INDEX entity_owner_type IF EXISTS",
        ],
    ),
    (
        # The write path of a 1,000-entity batch, measured statement by statement (adr/0006):
        # - An entity's id is derived from (owner, key) (``entity_id``; ``apply_document``
        #   refuses any other), so uniqueness of ``id`` already implies uniqueness of
        #   (owner, key); entities MERGE on ``id`` alone and the composite constraint, a second
        #   range index with long composite keys to seek, lock and update per entity, goes.
        # - The full-text index applies its updates after the commit, in the background
        #   (``fulltext.eventually_consistent``): Lucene leaves the commit path of every write.
        #   ``search_entities`` first waits for pending updates, so a search still sees every
        #   committed write (read-your-writes is kept; only a search racing a write waits).
        # Recreating the full-text index repopulates it; start-up waits for it (awaitIndexes).
        4,
        [
            "DROP CONSTRAINT entity_owner_key IF EXISTS",
            "DROP INDEX entity_names IF EXISTS",
            "CREATE FULLTEXT INDEX entity_names IF NOT EXISTS "
            "FOR (e:Entity) ON EACH [e.name, e.owner] "
            "OPTIONS {indexConfig: {`fulltext.eventually_consistent`: true}}",
        ],
    ),
    (
        # What each document says relates two entities (adr/0024): one (:Statement) node per
        # document and relation, with its type, verb and sentences; (a, b) is the pair in id
        # order, so both directions are one index seek.
        5,
        [
            "CREATE INDEX statement_pair IF NOT EXISTS FOR (s:Statement) ON (s.owner, s.a, s.b)",
            "CREATE INDEX statement_document IF NOT EXISTS "
            "FOR (s:Statement) ON (s.owner, s.document_id)",
            # The most connected entities and the export list an owner's entities: a seek,
            # not a scan of every owner's.
            "CREATE INDEX entity_owner IF NOT EXISTS FOR (e:Entity) ON (e.owner)",
        ],
    ),
    (
        # Resolution across documents (adr/0024): (:Alias) records an owner's merges,
        # (:Variant) the keys by compact spelling; each document's extraction before merges is
        # kept on its (:Document) as ``extraction`` (JSON).
        6,
        [
            "CREATE CONSTRAINT alias_owner_key IF NOT EXISTS "
            "FOR (a:Alias) REQUIRE (a.owner, a.alias_key) IS UNIQUE",
            "CREATE CONSTRAINT variant_owner_compact_key IF NOT EXISTS "
            "FOR (v:Variant) REQUIRE (v.owner, v.compact, v.key) IS UNIQUE",
        ],
    ),
]

_SCHEMA_ALREADY_THERE = (
    "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists",
    "Neo.ClientError.Schema.ConstraintAlreadyExists",
    "Neo.ClientError.Schema.IndexAlreadyExists",
)


# One hop from a whole frontier at once. A variable-length pattern (``*1..3``) enumerates every
# path, which explodes around hub entities; walking level by level touches each node once.
def _level(depth: int) -> str:
    """One hop from level ``depth - 1`` to entities on no earlier level, at most $cap."""
    source = "[s]" if depth == 1 else f"l{depth - 1}"
    earlier = " ".join(f"AND NOT n IN l{d}" for d in range(1, depth))
    carried = ", ".join(["s", *(f"l{d}" for d in range(1, depth))])
    return (
        f"CALL ({carried}) {{ "
        f"UNWIND {source} AS a "
        "MATCH (a)-[r:RELATED_TO]-(n:Entity) "
        f"WHERE r.weight >= $min_weight AND n.owner = $owner AND n <> s {earlier} "
        f"WITH DISTINCT n LIMIT $cap RETURN collect(n) AS l{depth} }} "
    )


def _neighbours_query(depth: int) -> LiteralString:
    levels = range(1, depth + 1)
    found = " + ".join(f"[x IN l{d} | [{d}, x]]" for d in levels)
    carried = ", ".join(["s", *(f"l{d}" for d in levels)])
    return (
        "MATCH (s:Entity {owner: $owner, id: $id}) "
        + "".join(_level(d) for d in levels)
        # Type filter, order and limit on the server: only the chosen entities travel.
        + f"CALL ({carried}) {{ "
        f"UNWIND {found} AS f "
        "WITH f[0] AS d, f[1] AS n WHERE size($types) = 0 OR n.type IN $types "
        "WITH d, n ORDER BY d, n.name, n.id LIMIT $limit "
        "RETURN collect(d) AS distances, collect(n) AS chosen } "
        # The relations among them in the same statement (it was a second round trip).
        "CALL (s, chosen) { "
        "WITH [s] + chosen AS nodes UNWIND nodes AS a "
        "MATCH (a)-[r:RELATED_TO]->(b) WHERE r.weight >= $min_weight AND b IN nodes "
        "WITH a.id AS source, b.id AS target, r.weight AS weight "
        "ORDER BY weight DESC, source, target LIMIT $relation_limit "
        "RETURN collect([source, target, weight]) AS relations } "
        # Lists, not maps or records: the driver decodes a list element in ~2 µs, a record in
        # ~40 µs.
        "RETURN [s.id, s.name, s.type, s.key] AS start, distances, "
        "[n IN chosen | [n.id, n.name, n.type, n.key]] AS entities, relations"
    )


# Neighbours level by level, then the nearest $limit of the wanted types and the relations among
# them, all in one statement: one round trip, one record holding lists. Built once from
# constants (no user input): what the driver gets is a fixed query per depth.
_NEIGHBOURS: dict[int, LiteralString] = {
    depth: _neighbours_query(depth) for depth in range(1, MAX_DEPTH + 1)
}
#: Entities followed from the given chunks when looking for related documents.
_RELATED_MAX_ENTITIES = 200
#: Bounds the work of one neighbours query: at most this many entities are visited in total.
MAX_VISITED = 5_000

_SHORTEST: dict[int, LiteralString] = {
    depth: (
        "MATCH (a:Entity {owner: $owner, id: $source}), (b:Entity {owner: $owner, id: $target}) "
        f"MATCH p = shortestPath((a)-[:RELATED_TO*..{depth}]-(b)) "
        "RETURN [n IN nodes(p) | n {.id, .name, .type, .key}] AS nodes, "
        "[r IN relationships(p) | {source: startNode(r).id, target: endNode(r).id, "
        "weight: r.weight}] AS relations LIMIT 1"
    )
    for depth in range(1, MAX_PATH_DEPTH + 1)
}


_SEARCH: LiteralString = (
    "CALL db.index.fulltext.queryNodes($index, $lucene) YIELD node, score "
    "WHERE node.owner = $owner "
    "RETURN node.id AS id, node.name AS name, node.type AS type, node.key AS key, "
    "score ORDER BY score DESC, name LIMIT $limit"
)
_SEARCH_AFTER_WRITE: LiteralString = (
    "CALL db.index.fulltext.awaitEventuallyConsistentIndexRefresh() " + _SEARCH
)


@dataclass(frozen=True, slots=True)
class Neo4jConnection:
    uri: str
    user: str
    password: str


def parse_neo4j_url(url: str) -> Neo4jConnection:
    """``bolt://user:pass@host:7687`` → the driver's URI and auth (userinfo is not a URI part
    the driver accepts)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("The Neo4j URL needs a host, as in bolt://user:password@127.0.0.1:7687.")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return Neo4jConnection(
        uri=f"{parts.scheme}://{host}{port}",
        user=unquote(parts.username or "neo4j"),
        password=unquote(parts.password or ""),
    )


class Neo4jGraphStore:
    def __init__(
        self,
        url: str,
        *,
        database: str = "neo4j",
        max_pool_size: int = 20,
        migration_timeout_s: float = 60.0,
    ) -> None:
        connection = parse_neo4j_url(url)
        self._connection = connection
        self._database = database
        self._max_pool_size = max_pool_size
        self._migration_timeout_s = migration_timeout_s
        self._driver: AsyncDriver | None = None
        #: A write committed since the last search (see ``search_entities``).
        self._fulltext_pending = True

    @property
    def driver(self) -> AsyncDriver:
        if self._driver is None:
            raise RuntimeError("Neo4jGraphStore.start() has not run.")
        return self._driver

    async def start(self) -> None:
        self._driver = AsyncGraphDatabase.driver(
            self._connection.uri,
            auth=(self._connection.user, self._connection.password),
            max_connection_pool_size=self._max_pool_size,
            connection_acquisition_timeout=10.0,
        )
        await self._driver.verify_connectivity()
        await self.migrate()

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
            self._driver = None

    async def ping(self) -> None:
        await self._read("RETURN 1 AS ok", {})

    async def migrate(self) -> list[int]:
        """Apply the migrations not yet recorded; return the versions applied now."""
        applied_now = []
        done = {
            row["version"]
            for row in await self._read(
                "MATCH (m:SchemaMigration) RETURN m.version AS version LIMIT 1000", {}
            )
        }
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                try:
                    await self.driver.execute_query(statement, database_=self._database)
                except ClientError as exc:
                    if exc.code not in _SCHEMA_ALREADY_THERE:
                        raise
            await self.driver.execute_query(
                "MERGE (m:SchemaMigration {version: $version}) "
                "ON CREATE SET m.applied_at = datetime()",
                {"version": version},
                database_=self._database,
            )
            applied_now.append(version)
        # A new full-text index answers only once it is online.
        deadline_s = max(1, int(self._migration_timeout_s))
        await self.driver.execute_query(
            "CALL db.awaitIndexes($seconds)", {"seconds": deadline_s}, database_=self._database
        )
        return applied_now

    # --- helpers ------------------------------------------------------------------------

    async def _read(self, query: LiteralString, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.driver.session(database=self._database) as session:
            return cast(
                list[dict[str, Any]],
                await session.execute_read(_fetch, query, params),
            )

    # --- writes -------------------------------------------------------------------------

    async def apply_document(
        self,
        owner: str,
        document_id: str,
        title: str,
        chunks: Sequence[ChunkRef],
        entities: Sequence[Entity],
        mentions: Sequence[Mention],
        relations: Sequence[RelationCandidate],
    ) -> None:
        params = document_params(owner, document_id, title, chunks, entities, mentions, relations)
        async with self.driver.session(database=self._database) as session:
            await session.execute_write(_apply_document, params)
        self._fulltext_pending = True

    async def delete_document(self, owner: str, document_id: str) -> bool:
        params = {"owner": owner, "document_id": document_id, "prefix": f"{document_id}:"}
        async with self.driver.session(database=self._database) as session:
            existed = cast(bool, await session.execute_write(_delete_document, params))
        self._fulltext_pending = True
        return existed

    # --- reads --------------------------------------------------------------------------

    async def search_entities(self, owner: str, query: str, limit: int) -> list[ScoredEntity]:
        terms = normalise_key(query).split()[:12]
        if not terms:
            return []
        # Terms are \w+ only (normalise_key), so nothing in them is Lucene syntax.
        clauses = " ".join(f"{t}~" if len(t) > 3 else f"{t}~1 {t}*" for t in terms)
        owner_phrase = owner.replace("\\", "\\\\").replace('"', '\\"')
        lucene = f'owner:"{owner_phrase}" AND name:({clauses})'
        # The index applies updates after commit (migration 4). After a write of this store,
        # the next search first waits for the pending updates, so the store reads its own
        # writes; otherwise it skips the wait (measured: +7 ms median with nothing pending, on
        # a loaded machine). Writes of other processes show up in search once applied, as in any
        # search index. The flag is cleared before the wait, so a write committing meanwhile
        # sets it again for the next search.
        fresh = self._fulltext_pending
        self._fulltext_pending = False
        rows = await self._read(
            _SEARCH_AFTER_WRITE if fresh else _SEARCH,
            {"index": FULLTEXT_INDEX, "lucene": lucene, "owner": owner, "limit": limit},
        )
        return [ScoredEntity(_entity(row), round(float(row["score"]), 4)) for row in rows]

    async def get_entity(self, owner: str, entity_id: str, top: int = 5) -> EntityDetail | None:
        rows = await self._read(
            "MATCH (e:Entity {owner: $owner, id: $id}) "
            "CALL (e) { "
            "  OPTIONAL MATCH (e)<-[m:MENTIONS]-(:Chunk)-[:PART_OF]->(d:Document {owner: $owner})"
            "  WITH d, sum(m.count) AS n WHERE d IS NOT NULL "
            "  ORDER BY n DESC, d.id LIMIT $top "
            "  RETURN collect({id: d.id, title: d.title, mentions: n}) AS documents "
            "} "
            "RETURN e.id AS id, e.name AS name, e.type AS type, e.key AS key, "
            "COUNT { (e)-[:RELATED_TO]-() } AS degree, "
            "COLLECT { MATCH (e)<-[m:MENTIONS]-() RETURN m.count }  AS counts, "
            "documents LIMIT 1",
            {"owner": owner, "id": entity_id, "top": top},
        )
        if not rows:
            return None
        row = rows[0]
        return EntityDetail(
            entity=_entity(row),
            degree=int(row["degree"]),
            mentions=sum(int(c) for c in row["counts"]),
            top_documents=tuple(
                DocumentMentions(d["id"], d["title"], int(d["mentions"])) for d in row["documents"]
            ),
        )

    async def neighbors(
        self,
        owner: str,
        entity_id: str,
        *,
        depth: int,
        types: Sequence[str] = (),
        min_weight: int = 1,
        limit: int = 50,
    ) -> Subgraph | None:
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be between 1 and {MAX_DEPTH}, not {depth}.")
        params = {
            "owner": owner,
            "id": entity_id,
            "depth": depth,
            "types": list(types),
            "min_weight": min_weight,
            "limit": limit,
            "relation_limit": limit * 4,
        }
        # One auto-commit statement: a managed transaction adds a COMMIT round trip to a read
        # (measured on a 20k/100k graph, depth 2, interleaved: p50 21 -> 13 ms, loaded machine).
        async with self.driver.session(
            database=self._database, default_access_mode=READ_ACCESS
        ) as session:
            result = await session.run(_NEIGHBOURS[depth], {**params, "cap": MAX_VISITED})
            record = await result.single()
        return _subgraph(record)

    async def shortest_path(
        self, owner: str, source_id: str, target_id: str, *, max_depth: int
    ) -> Path | None:
        query = _SHORTEST.get(max_depth)
        if query is None:
            raise ValueError(f"max_depth must be between 1 and {MAX_PATH_DEPTH}.")
        if source_id == target_id:
            rows = await self._read(
                "MATCH (e:Entity {owner: $owner, id: $id}) "
                "RETURN e.id AS id, e.name AS name, e.type AS type, e.key AS key LIMIT 1",
                {"owner": owner, "id": source_id},
            )
            return Path((_entity(rows[0]),), ()) if rows else None
        rows = await self._read(query, {"owner": owner, "source": source_id, "target": target_id})
        if not rows:
            return None
        return Path(
            tuple(_entity(node) for node in rows[0]["nodes"]),
            tuple(
                Relation(r["source"], r["target"], int(r["weight"])) for r in rows[0]["relations"]
            ),
        )

    async def related_documents(
        self,
        owner: str,
        chunk_ids: Sequence[str],
        *,
        exclude_documents: Sequence[str],
        limit: int,
    ) -> list[RelatedDocument]:
        rows = await self._read(
            "UNWIND $chunk_ids AS cid "
            "MATCH (:Chunk {owner: $owner, id: cid})-[:MENTIONS]->(e:Entity) "
            "WITH DISTINCT e LIMIT $max_entities "
            "MATCH (e)<-[m:MENTIONS]-(:Chunk)-[:PART_OF]->(d:Document {owner: $owner}) "
            "WHERE NOT d.id IN $exclude "
            "WITH d, e, sum(m.count) AS weight ORDER BY weight DESC, e.name "
            "WITH d, count(e) AS shared, collect(e.name)[..5] AS via "
            "ORDER BY shared DESC, d.id LIMIT $limit "
            "RETURN collect({id: d.id, title: d.title, shared: shared, via: via}) AS docs",
            {
                "owner": owner,
                "chunk_ids": list(chunk_ids),
                "exclude": list(exclude_documents),
                "limit": limit,
                "max_entities": _RELATED_MAX_ENTITIES,
            },
        )
        return [
            RelatedDocument(d["id"], d["title"], int(d["shared"]), tuple(d["via"]))
            for d in (rows[0]["docs"] if rows else [])
        ]

    async def document_graph(self, owner: str, document_id: str, limit: int) -> Subgraph | None:
        params = {
            "owner": owner,
            "document_id": document_id,
            "prefix": f"{document_id}:",
            "limit": limit,
            "relation_limit": limit * 4,
        }
        async with self.driver.session(database=self._database) as session:
            return cast(Subgraph | None, await session.execute_read(_document_graph, params))

    async def top_entities(
        self, owner: str, *, types: Sequence[str], limit: int
    ) -> list[RankedEntity]:
        rows = await self._read(
            "MATCH (e:Entity {owner: $owner}) WHERE size($types) = 0 OR e.type IN $types "
            "WITH e, COUNT { (e)-[:RELATED_TO]-() } AS degree "
            "ORDER BY degree DESC, e.name, e.id LIMIT $limit "
            "RETURN e.id AS id, e.name AS name, e.type AS type, e.key AS key, degree",
            {"owner": owner, "types": list(types), "limit": limit},
        )
        return [RankedEntity(_entity(row), int(row["degree"])) for row in rows]

    async def export_graph(self, owner: str, *, entities: int, relations: int) -> Subgraph:
        ranked = await self.top_entities(owner, types=(), limit=entities)
        ids = [r.entity.id for r in ranked]
        rows = await self._read(
            "MATCH (a:Entity {owner: $owner})-[r:RELATED_TO]->(b:Entity {owner: $owner}) "
            "WHERE a.id IN $ids AND b.id IN $ids "
            "RETURN a.id AS source, b.id AS target, r.weight AS weight "
            "ORDER BY weight DESC, source, target LIMIT $limit",
            {"owner": owner, "ids": ids, "limit": relations},
        )
        return Subgraph(
            tuple(r.entity for r in ranked),
            tuple(
                Relation(*canonical_pair(r["source"], r["target"]), weight=int(r["weight"]))
                for r in rows
            ),
        )

    async def statements(
        self, owner: str, pairs: Sequence[tuple[str, str]], per_pair: int
    ) -> list[Statement]:
        wanted = sorted({canonical_pair(a, b) for a, b in pairs})
        if not wanted:
            return []
        rows = await self._read(
            "UNWIND $pairs AS pair "
            "CALL (pair) { "
            "  MATCH (s:Statement {owner: $owner, a: pair[0], b: pair[1]}) "
            "  WITH s ORDER BY s.type = 'RELATED_TO', s.type, s.document_id "
            "  RETURN s LIMIT $per_pair } "
            "RETURN s.source_id AS source, s.target_id AS target, s.type AS type, "
            "s.verb AS verb, s.document_id AS document_id, s.evidence AS evidence, "
            "s.sentences AS sentences",
            {"owner": owner, "pairs": [list(p) for p in wanted], "per_pair": per_pair},
        )
        # A statement deleted by a concurrent write (its document discarded) can still be
        # matched with its properties gone: it is skipped, not read as a 500.
        return [
            Statement(
                r["source"],
                r["target"],
                r["type"],
                r["verb"],
                r["document_id"],
                tuple(r["evidence"] or ()),
                tuple(r["sentences"] or ()),
            )
            for r in rows
            if r["type"] is not None and r["source"] is not None
        ]

    async def _write(self, query: LiteralString, params: dict[str, Any]) -> int:
        records, _, _ = await self.driver.execute_query(query, params, database_=self._database)
        return int(records[0]["n"]) if records and "n" in records[0].keys() else 0

    async def aliases(self, owner: str) -> list[Alias]:
        rows = await self._read(
            "MATCH (a:Alias {owner: $owner}) RETURN a.alias_key AS alias_key, "
            "a.canonical_key AS canonical_key, a.reason AS reason ORDER BY alias_key",
            {"owner": owner},
        )
        return [Alias(r["alias_key"], r["canonical_key"], r["reason"]) for r in rows]

    async def set_alias(self, owner: str, alias: Alias) -> None:
        await self._write(
            "MERGE (a:Alias {owner: $owner, alias_key: $alias_key}) "
            "SET a.canonical_key = $canonical_key, a.reason = $reason, "
            "a.created_at = datetime() RETURN count(a) AS n",
            {
                "owner": owner,
                "alias_key": alias.alias_key,
                "canonical_key": alias.canonical_key,
                "reason": alias.reason,
            },
        )

    async def remove_alias(self, owner: str, alias_key: str) -> bool:
        removed = await self._write(
            "MATCH (a:Alias {owner: $owner, alias_key: $alias_key}) "
            "WITH a, 1 AS one DELETE a RETURN sum(one) AS n",
            {"owner": owner, "alias_key": alias_key},
        )
        return removed > 0

    async def save_spellings(self, owner: str, compacts: dict[str, str]) -> None:
        await self._write(
            "UNWIND $compacts AS pair "
            "MERGE (:Variant {owner: $owner, compact: pair[0], key: pair[1]}) "
            "RETURN count(*) AS n",
            {"owner": owner, "compacts": [[c, k] for c, k in compacts.items()]},
        )

    async def save_extraction(self, owner: str, document_id: str, payload: str) -> None:
        await self._write(
            "MATCH (d:Document {owner: $owner, id: $document_id}) SET d.extraction = $payload "
            "RETURN count(d) AS n",
            {"owner": owner, "document_id": document_id, "payload": payload},
        )

    async def extractions(self, owner: str, document_ids: Sequence[str]) -> dict[str, str]:
        rows = await self._read(
            "MATCH (d:Document {owner: $owner}) WHERE d.id IN $ids "
            "AND d.extraction IS NOT NULL RETURN d.id AS id, d.extraction AS payload",
            {"owner": owner, "ids": list(document_ids)},
        )
        return {r["id"]: r["payload"] for r in rows}

    async def variant_keys(self, owner: str, compacts: Sequence[str]) -> dict[str, list[str]]:
        rows = await self._read(
            "UNWIND $compacts AS compact "
            "MATCH (v:Variant {owner: $owner, compact: compact}) "
            "RETURN v.compact AS compact, v.key AS key ORDER BY compact, key",
            {"owner": owner, "compacts": list(compacts)},
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row["compact"], []).append(row["key"])
        return found

    async def documents_mentioning(self, owner: str, entity_ids: Sequence[str]) -> list[str]:
        rows = await self._read(
            "MATCH (e:Entity {owner: $owner})<-[:MENTIONS]-(c:Chunk {owner: $owner}) "
            "WHERE e.id IN $ids RETURN DISTINCT c.document_id AS id ORDER BY id",
            {"owner": owner, "ids": list(entity_ids)},
        )
        return [r["id"] for r in rows]


def document_params(
    owner: str,
    document_id: str,
    title: str,
    chunks: Sequence[ChunkRef],
    entities: Sequence[Entity],
    mentions: Sequence[Mention],
    relations: Sequence[RelationCandidate],
) -> dict[str, Any]:
    """The parameters of ``_APPLY_DOCUMENT`` (also used by bench/bench_graph.py to time the
    statement's parts one by one)."""
    # Mentions and relations name their endpoints by position in the chunk and entity lists:
    # the statement collects the merged nodes in that order, so no endpoint is looked up
    # again through an index (that was 4,000 of the 5,100 index seeks of a 1,000 batch).
    unique: dict[str, Entity] = {}
    for entity in entities:
        unique.setdefault(entity.key, entity)
    entity_rows = list(unique.values())
    for entity in entity_rows:
        # Entities MERGE on id alone: (owner, key) stays unique only while id derives from it.
        if entity.id != entity_id(owner, entity.key):
            raise ValueError(f"Entity id {entity.id!r} is not the id of its owner and key.")
    entity_at = {entity.key: i for i, entity in enumerate(entity_rows)}
    id_at = {entity.id: i for i, entity in enumerate(entity_rows)}
    chunk_at = {chunk.id: i for i, chunk in enumerate(chunks)}
    # One mention per (chunk, entity), the last count winning (mentions are CREATEd).
    by_pair = {
        (chunk_at[m.chunk_id], entity_at[m.entity_key]): m.count
        for m in mentions
        if m.chunk_id in chunk_at and m.entity_key in entity_at
    }
    ends = [
        canonical_pair(
            entity_rows[entity_at[relation.source_key]].id,
            entity_rows[entity_at[relation.target_key]].id,
        )
        for relation in relations
    ]
    # Parallel lists, not a list of maps: the same batch packs and unpacks in less than half
    # the time (measured: 1,000 entities, mentions and relations as maps ~70 ms, as lists
    # ~29 ms of wall time for a statement that only receives them, on a loaded machine).
    params = {
        "owner": owner,
        "document_id": document_id,
        "title": title,
        "prefix": f"{document_id}:",
        "chunk_ids": [c.id for c in chunks],
        "chunk_positions": [c.position for c in chunks],
        "chunk_headings": [c.heading for c in chunks],
        "entity_ids": [e.id for e in entity_rows],
        "entity_keys": [e.key for e in entity_rows],
        "entity_names": [e.name for e in entity_rows],
        "entity_types": [e.type for e in entity_rows],
        "mention_chunks": [c for c, _ in by_pair],
        "mention_entities": [e for _, e in by_pair],
        "mention_counts": list(by_pair.values()),
        "relation_sources": [id_at[a] for a, _ in ends],
        "relation_targets": [id_at[b] for _, b in ends],
        "relation_evidence": [list(relation.evidence) for relation in relations],
        "statements": [
            [
                *canonical_pair(st.source_id, st.target_id),
                st.source_id,
                st.target_id,
                st.type,
                st.verb,
                list(st.evidence),
                list(st.sentences),
            ]
            for st in statement_rows(document_id, {e.key: e.id for e in entity_rows}, relations)
        ],
    }
    return params


async def _fetch(
    tx: AsyncManagedTransaction, query: LiteralString, params: dict[str, Any]
) -> list[dict[str, Any]]:
    result = await tx.run(query, params)
    return [record.data() for record in await result.fetch(10_000)]


# The document's previous extraction: its mentions go, its evidence leaves relations (a relation
# left without evidence goes); the entities those mentions named are the orphan candidates.
_STRIP: LiteralString = (
    # The hint: the planner otherwise seeks the owner's documents by owner alone and filters.
    "MATCH (d0:Document {owner: $owner, id: $document_id}) USING INDEX d0:Document(owner, id) "
    "MATCH (d0)<-[:PART_OF]-(c:Chunk)-[m:MENTIONS]->(e:Entity) "
    "WITH collect(DISTINCT e) AS entities, collect(m) AS mentions "
    "FOREACH (m IN mentions | DELETE m) "
    "WITH entities UNWIND entities AS e "
    "OPTIONAL MATCH (e)-[r:RELATED_TO]->(:Entity) "
    "WHERE any(x IN r.evidence WHERE x STARTS WITH $prefix) "
    "WITH e, r, [x IN r.evidence WHERE NOT x STARTS WITH $prefix] AS kept "
    "FOREACH (_ IN CASE WHEN r IS NOT NULL AND size(kept) = 0 THEN [1] ELSE [] END | "
    "  DELETE r) "
    "FOREACH (_ IN CASE WHEN r IS NOT NULL AND size(kept) > 0 THEN [1] ELSE [] END | "
    "  SET r.evidence = kept, r.weight = size(kept)) "
)

# A whole document in one statement, one round trip (strip, write, drop orphans were three).
# Mentions and relations address their endpoints by position in the lists the chunk and entity
# subqueries collect (UNWIND and MERGE keep row order), not by an index seek per endpoint.
# Relations: ON CREATE / ON MATCH instead of one SET over coalesce(), which needed an Eager
# (the whole batch buffered) between reading and writing r.evidence.
_APPLY_DOCUMENT: LiteralString = (
    "CALL () { " + _STRIP + "RETURN collect(DISTINCT e) AS touched } "
    # Without the hint the planner scans every chunk of the owner in the (owner, id) index.
    "CALL () { "
    "  MATCH (c:Chunk {document_id: $document_id}) USING INDEX c:Chunk(document_id) "
    "  WHERE c.owner = $owner AND NOT c.id IN $chunk_ids DETACH DELETE c "
    "} "
    "MERGE (d:Document {owner: $owner, id: $document_id}) "
    "SET d.title = $title "
    "WITH d, touched "
    "CALL (d) { "
    "  UNWIND range(0, size($chunk_ids) - 1) AS i "
    "  MERGE (c:Chunk {owner: $owner, id: $chunk_ids[i]}) "
    "  ON CREATE SET c.document_id = $document_id "
    "  SET c.position = $chunk_positions[i], c.heading = $chunk_headings[i] "
    "  MERGE (c)-[:PART_OF]->(d) "
    "  RETURN collect(c) AS chunks "
    "} "
    # MERGE on the one uniquely constrained property; the rest is set on creation.
    "CALL () { "
    "  UNWIND range(0, size($entity_ids) - 1) AS i "
    "  MERGE (e:Entity {id: $entity_ids[i]}) "
    "  ON CREATE SET e.owner = $owner, e.key = $entity_keys[i], e.name = $entity_names[i], "
    "    e.type = $entity_types[i] "
    "  RETURN collect(e) AS entities "
    "} "
    # CREATE, not MERGE: the strip above removed every mention of this document's chunks, a
    # new chunk has none, and chunk ids are document-scoped (``<document>-<n>``), so no mention
    # of these chunks exists here; (chunk, entity) pairs arrive de-duplicated. That saves a
    # locking MERGE (two Expand(Into) and a lock pair) per mention.
    "CALL (chunks, entities) { "
    "  UNWIND range(0, size($mention_counts) - 1) AS i "
    "  WITH chunks[$mention_chunks[i]] AS c, entities[$mention_entities[i]] AS e, "
    "    $mention_counts[i] AS n "
    "  CREATE (c)-[:MENTIONS {count: n}]->(e) "
    "} "
    "CALL (entities) { "
    "  UNWIND range(0, size($relation_evidence) - 1) AS i "
    "  WITH entities[$relation_sources[i]] AS a, entities[$relation_targets[i]] AS b, "
    "    $relation_evidence[i] AS evidence "
    "  MERGE (a)-[r:RELATED_TO]->(b) "
    "  ON CREATE SET r.evidence = evidence, r.weight = size(evidence) "
    "  ON MATCH SET r.evidence = r.evidence + [x IN evidence WHERE NOT x IN r.evidence], "
    # Right whether this item reads r.evidence before or after the item above assigned it.
    "    r.weight = size(r.evidence) + size([x IN evidence WHERE NOT x IN r.evidence]) "
    "} "
    "CALL (touched) { "
    "  UNWIND touched AS e "
    "  WITH e WHERE NOT EXISTS { (e)<-[:MENTIONS]-() } "
    "  DETACH DELETE e "
    "}"
)


async def _strip_document(tx: AsyncManagedTransaction, params: dict[str, Any]) -> list[str]:
    """Remove the document's mentions and its evidence on relations; return the entity ids
    those mentions touched (the candidates for orphan removal)."""
    result = await tx.run(_STRIP + "RETURN collect(DISTINCT e.id) AS ids", params)
    record = await result.single()
    return list(record["ids"]) if record else []


async def _drop_orphans(tx: AsyncManagedTransaction, ids: list[str], owner: str) -> None:
    await tx.run(
        "UNWIND $ids AS id MATCH (e:Entity {id: id, owner: $owner}) "
        "WHERE NOT EXISTS { (e)<-[:MENTIONS]-() } DETACH DELETE e",
        {"ids": ids, "owner": owner},
    )


_DROP_STATEMENTS: LiteralString = (
    "MATCH (s:Statement {owner: $owner, document_id: $document_id}) DELETE s"
)
_WRITE_STATEMENTS: LiteralString = (
    "UNWIND $statements AS st "
    "CREATE (s:Statement {owner: $owner, document_id: $document_id, a: st[0], b: st[1], "
    "source_id: st[2], target_id: st[3], type: st[4], verb: st[5], evidence: st[6], "
    "sentences: st[7]})"
)


async def _apply_document(tx: AsyncManagedTransaction, params: dict[str, Any]) -> None:
    await (await tx.run(_APPLY_DOCUMENT, params)).consume()
    await (await tx.run(_DROP_STATEMENTS, params)).consume()
    if params["statements"]:
        await (await tx.run(_WRITE_STATEMENTS, params)).consume()


async def _delete_document(tx: AsyncManagedTransaction, params: dict[str, Any]) -> bool:
    touched = await _strip_document(tx, params)
    await (await tx.run(_DROP_STATEMENTS, params)).consume()
    result = await tx.run(
        "OPTIONAL MATCH (d:Document {owner: $owner, id: $document_id}) "
        "OPTIONAL MATCH (c:Chunk {owner: $owner, document_id: $document_id}) "
        "WITH d, collect(c) AS chunks "
        "FOREACH (c IN chunks | DETACH DELETE c) "
        "WITH d, d IS NOT NULL AS existed DETACH DELETE d RETURN existed",
        params,
    )
    record = await result.single()
    await _drop_orphans(tx, touched, params["owner"])
    # Spellings recorded for entities that no document mentions any more go with them.
    await (
        await tx.run(
            "MATCH (v:Variant {owner: $owner}) "
            "WHERE NOT EXISTS { MATCH (:Entity {owner: $owner, key: v.key}) } DELETE v",
            params,
        )
    ).consume()
    return bool(record and record["existed"])


def _subgraph(record: Record | None) -> Subgraph | None:
    """The neighbours statement's one record as a subgraph."""
    if record is None:
        return None
    start = _entity_from_list(record["start"])
    chosen = [_entity_from_list(row) for row in record["entities"]]
    distances = {start.id: 0}
    distances.update(
        zip((e.id for e in chosen), (int(d) for d in record["distances"]), strict=True)
    )
    return Subgraph(
        (start, *chosen),
        tuple(Relation(a, b, int(w)) for a, b, w in record["relations"]),
        distances,
    )


async def _document_graph(tx: AsyncManagedTransaction, params: dict[str, Any]) -> Subgraph | None:
    document = await (
        await tx.run(
            "MATCH (d:Document {owner: $owner, id: $document_id}) RETURN d.id AS id LIMIT 1",
            params,
        )
    ).single()
    if document is None:
        return None
    result = await tx.run(
        "MATCH (c:Chunk {owner: $owner, document_id: $document_id})-[m:MENTIONS]->(e:Entity) "
        "WITH e, sum(m.count) AS n ORDER BY n DESC, e.name LIMIT $limit "
        "RETURN e.id AS id, e.name AS name, e.type AS type, e.key AS key",
        params,
    )
    entities = [_entity(r.data()) for r in await result.fetch(params["limit"])]
    result = await tx.run(
        "UNWIND $ids AS id MATCH (a:Entity {id: id})-[r:RELATED_TO]->(b:Entity) "
        "WHERE b.id IN $ids "
        "WITH a, b, [x IN r.evidence WHERE x STARTS WITH $prefix] AS evidence "
        "WHERE size(evidence) > 0 "
        "RETURN a.id AS source, b.id AS target, evidence "
        "ORDER BY size(evidence) DESC, source, target LIMIT $relation_limit",
        {**params, "ids": [e.id for e in entities]},
    )
    relations = [
        Relation(r["source"], r["target"], len(r["evidence"]), tuple(sorted(r["evidence"])))
        for r in await result.fetch(params["relation_limit"])
    ]
    return Subgraph(tuple(entities), tuple(relations))


def _entity(row: dict[str, Any]) -> Entity:
    return Entity(id=row["id"], name=row["name"], type=row["type"], key=row["key"])


def _entity_from_list(row: list[str]) -> Entity:
    return Entity(id=row[0], name=row[1], type=row[2], key=row[3])
