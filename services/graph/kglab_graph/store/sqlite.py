"""The embedded graph store: SQLite tables, recursive CTEs for traversal, trigram search.

Relations are kept in ``edges`` in both directions (so a traversal is one indexed join per hop)
and in ``evidence`` once per supporting sentence; an edge's weight is its evidence count.
"""

from __future__ import annotations

import asyncio
import difflib
import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path as FilePath

import aiosqlite

from kglab_graph.domain import (
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
    normalise_key,
    statement_rows,
)

#: Search candidates taken by trigram overlap before they are ranked by edit similarity.
_SEARCH_CANDIDATES = 200
_MIN_SIMILARITY = 0.55
#: A bound on the rows one traversal may visit, so no query walks an owner's whole graph.
_MAX_VISITED = 100_000
#: Entities followed from the given chunks when looking for related documents.
_RELATED_MAX_ENTITIES = 200

_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE documents (
            owner TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, PRIMARY KEY (owner, id)
        ) WITHOUT ROWID;
        CREATE TABLE chunks (
            owner TEXT NOT NULL, id TEXT NOT NULL, document_id TEXT NOT NULL,
            position INTEGER NOT NULL, heading TEXT, PRIMARY KEY (owner, id)
        ) WITHOUT ROWID;
        CREATE INDEX chunks_document ON chunks(owner, document_id);
        CREATE TABLE entities (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, key TEXT NOT NULL,
            name TEXT NOT NULL, type TEXT NOT NULL, UNIQUE (owner, key)
        );
        CREATE TABLE mentions (
            owner TEXT NOT NULL, chunk_id TEXT NOT NULL, entity_id TEXT NOT NULL,
            count INTEGER NOT NULL, PRIMARY KEY (owner, chunk_id, entity_id)
        ) WITHOUT ROWID;
        CREATE INDEX mentions_entity ON mentions(entity_id);
        CREATE TABLE evidence (
            source_id TEXT NOT NULL, target_id TEXT NOT NULL, item TEXT NOT NULL,
            document_id TEXT NOT NULL, owner TEXT NOT NULL,
            PRIMARY KEY (source_id, target_id, item)
        ) WITHOUT ROWID;
        CREATE INDEX evidence_document ON evidence(document_id);
        CREATE INDEX evidence_target ON evidence(target_id);
        CREATE TABLE edges (
            source_id TEXT NOT NULL, target_id TEXT NOT NULL, owner TEXT NOT NULL,
            weight INTEGER NOT NULL, PRIMARY KEY (source_id, target_id)
        ) WITHOUT ROWID;
        CREATE INDEX edges_target ON edges(target_id);
        CREATE TABLE entity_grams (
            owner TEXT NOT NULL, gram TEXT NOT NULL, entity_id TEXT NOT NULL,
            PRIMARY KEY (owner, gram, entity_id)
        ) WITHOUT ROWID;
        CREATE INDEX entity_grams_entity ON entity_grams(entity_id);
        """,
    ),
    (
        # What each document says relates two entities, with the verb and the sentences
        # (adr/0024): co-occurrence and typed relations. (a, b) is the pair in id order.
        2,
        """
        CREATE TABLE statements (
            owner TEXT NOT NULL, document_id TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL,
            source_id TEXT NOT NULL, target_id TEXT NOT NULL, type TEXT NOT NULL,
            verb TEXT NOT NULL, evidence TEXT NOT NULL, sentences TEXT NOT NULL
        );
        CREATE INDEX statements_pair ON statements(owner, a, b);
        CREATE INDEX statements_document ON statements(owner, document_id);
        """,
    ),
    (
        # Resolution across documents (adr/0024): the owner's merges, each document's
        # extraction before merges (to re-apply when a merge is made or undone) and the keys
        # by compact spelling.
        3,
        """
        CREATE TABLE aliases (
            owner TEXT NOT NULL, alias_key TEXT NOT NULL, canonical_key TEXT NOT NULL,
            reason TEXT NOT NULL, created_at TEXT DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (owner, alias_key)
        ) WITHOUT ROWID;
        CREATE TABLE extractions (
            owner TEXT NOT NULL, document_id TEXT NOT NULL, payload TEXT NOT NULL,
            PRIMARY KEY (owner, document_id)
        ) WITHOUT ROWID;
        CREATE TABLE variants (
            owner TEXT NOT NULL, compact TEXT NOT NULL, key TEXT NOT NULL,
            PRIMARY KEY (owner, compact, key)
        ) WITHOUT ROWID;
        """,
    ),
]


def trigrams(key: str) -> set[str]:
    grams: set[str] = set()
    for word in key.split():
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def similarity(query_key: str, key: str) -> float:
    """Edit similarity of the whole names, or of the best-matching words when the query is
    shorter ("curie" finds "marie curie")."""
    whole = difflib.SequenceMatcher(None, query_key, key).ratio()
    query_words, words = query_key.split(), key.split()
    if not query_words or not words:
        return whole
    per_word = sum(
        max(difflib.SequenceMatcher(None, q, w).ratio() for w in words) for q in query_words
    ) / len(query_words)
    return max(whole, 0.95 * per_word)


class SqliteGraphStore:
    """A file-backed :class:`~kglab_graph.store.port.GraphStore` for ``make dev``."""

    def __init__(self, path: FilePath) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        # Reads use their own connection so they never see a write transaction half done.
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteGraphStore.start() has not run.")
        return self._db

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("SqliteGraphStore.start() has not run.")
        return self._reader

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()
        self._reader = await aiosqlite.connect(self._path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=5000")

    async def _migrate(self) -> None:
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT DEFAULT CURRENT_TIMESTAMP)"
            )
            async with db.execute("SELECT version FROM schema_migrations") as cursor:
                applied = {row[0] for row in await cursor.fetchall()}
            for version, script in _MIGRATIONS:
                if version in applied:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        for connection in (self._reader, self._db):
            if connection is not None:
                await connection.close()
        self._db = self._reader = None

    async def top_entities(
        self, owner: str, *, types: Sequence[str], limit: int
    ) -> list[RankedEntity]:
        type_filter = f"AND e.type IN ({_marks(types)}) " if types else ""
        async with self.reader.execute(
            f"SELECT e.id, e.name, e.type, e.key, count(ed.target_id) AS degree "
            f"FROM entities e LEFT JOIN edges ed ON ed.source_id = e.id "
            f"WHERE e.owner = ? {type_filter}"
            f"GROUP BY e.id ORDER BY degree DESC, e.name, e.id LIMIT ?",
            (owner, *types, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [RankedEntity(_entity(row[:4]), int(row[4])) for row in rows]

    async def export_graph(self, owner: str, *, entities: int, relations: int) -> Subgraph:
        ranked = await self.top_entities(owner, types=(), limit=entities)
        ids = [r.entity.id for r in ranked]
        found = await self._relations_among(owner, ids, 1, relations) if ids else []
        return Subgraph(tuple(r.entity for r in ranked), tuple(found))

    async def statements(
        self, owner: str, pairs: Sequence[tuple[str, str]], per_pair: int
    ) -> list[Statement]:
        wanted = sorted({canonical_pair(a, b) for a, b in pairs})
        found: list[Statement] = []
        for start in range(0, len(wanted), 200):
            batch = wanted[start : start + 200]
            values = ", ".join("(?, ?)" for _ in batch)
            async with self.reader.execute(
                f"SELECT a, b, source_id, target_id, type, verb, document_id, evidence, "
                f"sentences FROM statements WHERE owner = ? AND (a, b) IN (VALUES {values}) "
                f"ORDER BY a, b, type = 'RELATED_TO', type, document_id, rowid",
                (owner, *(x for pair in batch for x in pair)),
            ) as cursor:
                rows = await cursor.fetchall()
            taken: dict[tuple[str, str], int] = {}
            for a, b, source, target, kind, verb, document_id, evidence, sentences in rows:
                if taken.get((a, b), 0) >= per_pair:
                    continue
                taken[(a, b)] = taken.get((a, b), 0) + 1
                found.append(
                    Statement(
                        source,
                        target,
                        kind,
                        verb,
                        document_id,
                        tuple(json.loads(evidence)),
                        tuple(json.loads(sentences)),
                    )
                )
        return found

    async def ping(self) -> None:
        await (await self.reader.execute("SELECT 1")).close()

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
        ids = {entity.key: entity.id for entity in entities}
        async with self._write_lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                touched, pairs = await self._strip_document(owner, document_id)
                current = [chunk.id for chunk in chunks]
                await db.execute(
                    f"DELETE FROM chunks WHERE owner = ? AND document_id = ? "
                    f"AND id NOT IN ({_marks(current)})",
                    (owner, document_id, *current),
                )
                await db.execute(
                    "INSERT INTO documents (id, owner, title) VALUES (?, ?, ?) "
                    "ON CONFLICT (owner, id) DO UPDATE SET title = excluded.title",
                    (document_id, owner, title),
                )
                await db.executemany(
                    "INSERT INTO chunks (id, owner, document_id, position, heading) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, id) DO UPDATE SET "
                    "position = excluded.position, heading = excluded.heading",
                    [(c.id, owner, document_id, c.position, c.heading) for c in chunks],
                )
                await db.executemany(
                    "INSERT INTO entities (id, owner, key, name, type) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (owner, key) DO NOTHING",
                    [(e.id, owner, e.key, e.name, e.type) for e in entities],
                )
                await db.executemany(
                    "INSERT OR IGNORE INTO entity_grams (owner, gram, entity_id) VALUES (?, ?, ?)",
                    [(owner, gram, e.id) for e in entities for gram in trigrams(e.key)],
                )
                await db.executemany(
                    "INSERT INTO mentions (owner, chunk_id, entity_id, count) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (owner, chunk_id, entity_id) "
                    "DO UPDATE SET count = excluded.count",
                    [(owner, m.chunk_id, ids[m.entity_key], m.count) for m in mentions],
                )
                rows: list[tuple[str, str, str, str, str]] = []
                for relation in relations:
                    a, b = canonical_pair(ids[relation.source_key], ids[relation.target_key])
                    pairs.add((a, b))
                    rows.extend((a, b, item, document_id, owner) for item in relation.evidence)
                await db.executemany(
                    "INSERT OR IGNORE INTO evidence (source_id, target_id, item, document_id, "
                    "owner) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                await db.executemany(
                    "INSERT INTO statements (owner, document_id, a, b, source_id, target_id, "
                    "type, verb, evidence, sentences) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            owner,
                            document_id,
                            *canonical_pair(st.source_id, st.target_id),
                            st.source_id,
                            st.target_id,
                            st.type,
                            st.verb,
                            json.dumps(st.evidence),
                            json.dumps(st.sentences),
                        )
                        for st in statement_rows(document_id, ids, relations)
                    ],
                )
                await self._reweigh(owner, pairs)
                await self._drop_orphans(touched)
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def delete_document(self, owner: str, document_id: str) -> bool:
        async with self._write_lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute(
                    "SELECT 1 FROM documents WHERE owner = ? AND id = ?", (owner, document_id)
                ) as cursor:
                    existed = await cursor.fetchone() is not None
                touched, pairs = await self._strip_document(owner, document_id)
                await db.execute(
                    "DELETE FROM chunks WHERE owner = ? AND document_id = ?", (owner, document_id)
                )
                await db.execute(
                    "DELETE FROM documents WHERE owner = ? AND id = ?", (owner, document_id)
                )
                await db.execute(
                    "DELETE FROM extractions WHERE owner = ? AND document_id = ?",
                    (owner, document_id),
                )
                await self._reweigh(owner, pairs)
                await self._drop_orphans(touched)
                # Spellings recorded for entities no document mentions any more go with them.
                await db.execute(
                    "DELETE FROM variants WHERE owner = ? AND NOT EXISTS (SELECT 1 FROM "
                    "entities e WHERE e.owner = variants.owner AND e.key = variants.key)",
                    (owner,),
                )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return existed

    async def _strip_document(
        self, owner: str, document_id: str
    ) -> tuple[set[str], set[tuple[str, str]]]:
        """Remove the document's mentions and evidence; return what they touched."""
        db = self.db
        async with db.execute(
            "SELECT DISTINCT m.entity_id FROM chunks c "
            "JOIN mentions m ON m.owner = c.owner AND m.chunk_id = c.id "
            "WHERE c.owner = ? AND c.document_id = ?",
            (owner, document_id),
        ) as cursor:
            touched = {row[0] for row in await cursor.fetchall()}
        async with db.execute(
            "SELECT DISTINCT source_id, target_id FROM evidence "
            "WHERE owner = ? AND document_id = ?",
            (owner, document_id),
        ) as cursor:
            pairs = {(row[0], row[1]) for row in await cursor.fetchall()}
        await db.execute(
            "DELETE FROM mentions WHERE owner = ? AND chunk_id IN "
            "(SELECT id FROM chunks WHERE owner = ? AND document_id = ?)",
            (owner, owner, document_id),
        )
        await db.execute(
            "DELETE FROM evidence WHERE owner = ? AND document_id = ?", (owner, document_id)
        )
        await db.execute(
            "DELETE FROM statements WHERE owner = ? AND document_id = ?", (owner, document_id)
        )
        return touched, pairs

    async def _write(self, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.executemany(statement, rows)
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise

    async def aliases(self, owner: str) -> list[Alias]:
        async with self.reader.execute(
            "SELECT alias_key, canonical_key, reason FROM aliases WHERE owner = ? "
            "ORDER BY alias_key",
            (owner,),
        ) as cursor:
            return [Alias(r[0], r[1], r[2]) for r in await cursor.fetchall()]

    async def set_alias(self, owner: str, alias: Alias) -> None:
        await self._write(
            "INSERT INTO aliases (owner, alias_key, canonical_key, reason) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (owner, alias_key) DO UPDATE SET canonical_key = excluded.canonical_key, "
            "reason = excluded.reason, created_at = CURRENT_TIMESTAMP",
            [(owner, alias.alias_key, alias.canonical_key, alias.reason)],
        )

    async def remove_alias(self, owner: str, alias_key: str) -> bool:
        async with self._write_lock:
            cursor = await self.db.execute(
                "DELETE FROM aliases WHERE owner = ? AND alias_key = ?", (owner, alias_key)
            )
            return cursor.rowcount > 0

    async def save_spellings(self, owner: str, compacts: dict[str, str]) -> None:
        await self._write(
            "INSERT OR IGNORE INTO variants (owner, compact, key) VALUES (?, ?, ?)",
            [(owner, compact, key) for compact, key in compacts.items()],
        )

    async def save_extraction(self, owner: str, document_id: str, payload: str) -> None:
        await self._write(
            "INSERT INTO extractions (owner, document_id, payload) VALUES (?, ?, ?) "
            "ON CONFLICT (owner, document_id) DO UPDATE SET payload = excluded.payload",
            [(owner, document_id, payload)],
        )

    async def extractions(self, owner: str, document_ids: Sequence[str]) -> dict[str, str]:
        if not document_ids:
            return {}
        async with self.reader.execute(
            f"SELECT document_id, payload FROM extractions WHERE owner = ? "
            f"AND document_id IN ({_marks(document_ids)})",
            (owner, *document_ids),
        ) as cursor:
            return {r[0]: r[1] for r in await cursor.fetchall()}

    async def variant_keys(self, owner: str, compacts: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for start in range(0, len(compacts), 500):
            batch = list(compacts[start : start + 500])
            async with self.reader.execute(
                f"SELECT compact, key FROM variants WHERE owner = ? "
                f"AND compact IN ({_marks(batch)}) ORDER BY compact, key",
                (owner, *batch),
            ) as cursor:
                for compact, key in await cursor.fetchall():
                    found.setdefault(compact, []).append(key)
        return found

    async def documents_mentioning(self, owner: str, entity_ids: Sequence[str]) -> list[str]:
        if not entity_ids:
            return []
        async with self.reader.execute(
            f"SELECT DISTINCT c.document_id FROM mentions m "
            f"JOIN chunks c ON c.owner = m.owner AND c.id = m.chunk_id "
            f"WHERE m.owner = ? AND m.entity_id IN ({_marks(entity_ids)}) ORDER BY c.document_id",
            (owner, *entity_ids),
        ) as cursor:
            return [r[0] for r in await cursor.fetchall()]

    async def _reweigh(self, owner: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Set each touched pair's weight to its evidence count (both directions), in bulk."""
        db = self.db
        await db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS touched_pairs (a TEXT NOT NULL, b TEXT NOT NULL)"
        )
        await db.execute("DELETE FROM touched_pairs")
        await db.executemany("INSERT INTO touched_pairs (a, b) VALUES (?, ?)", list(pairs))
        for statement in (
            "DELETE FROM edges WHERE (source_id, target_id) IN (SELECT a, b FROM touched_pairs)",
            "DELETE FROM edges WHERE (source_id, target_id) IN (SELECT b, a FROM touched_pairs)",
        ):
            await db.execute(statement)
        for source, target in (("source_id", "target_id"), ("target_id", "source_id")):
            await db.execute(
                f"INSERT INTO edges (source_id, target_id, owner, weight) "
                f"SELECT e.{source}, e.{target}, ?, count(*) FROM touched_pairs t "
                f"CROSS JOIN evidence e ON e.source_id = t.a AND e.target_id = t.b "
                f"GROUP BY e.source_id, e.target_id",
                (owner,),
            )
        await db.execute("DELETE FROM touched_pairs")

    async def _drop_orphans(self, candidates: set[str]) -> None:
        """Delete the candidates no chunk mentions any more, with their relations."""
        db = self.db
        await db.execute("CREATE TEMP TABLE IF NOT EXISTS orphans (id TEXT PRIMARY KEY)")
        await db.execute("DELETE FROM orphans")
        await db.executemany(
            "INSERT OR IGNORE INTO orphans (id) VALUES (?)", [(c,) for c in candidates]
        )
        await db.execute(
            "DELETE FROM orphans WHERE EXISTS "
            "(SELECT 1 FROM mentions m WHERE m.entity_id = orphans.id)"
        )
        for statement in (
            "DELETE FROM edges WHERE source_id IN (SELECT id FROM orphans)",
            "DELETE FROM edges WHERE target_id IN (SELECT id FROM orphans)",
            "DELETE FROM evidence WHERE source_id IN (SELECT id FROM orphans)",
            "DELETE FROM evidence WHERE target_id IN (SELECT id FROM orphans)",
            "DELETE FROM entity_grams WHERE entity_id IN (SELECT id FROM orphans)",
            "DELETE FROM entities WHERE id IN (SELECT id FROM orphans)",
            "DELETE FROM orphans",
        ):
            await db.execute(statement)

    # --- reads --------------------------------------------------------------------------

    async def search_entities(self, owner: str, query: str, limit: int) -> list[ScoredEntity]:
        query_key = normalise_key(query)
        grams = sorted(trigrams(query_key))
        if not grams:
            return []
        async with self.reader.execute(
            f"SELECT e.id, e.name, e.type, e.key FROM entity_grams g "
            f"JOIN entities e ON e.id = g.entity_id "
            f"WHERE g.owner = ? AND g.gram IN ({_marks(grams)}) "
            f"GROUP BY e.id ORDER BY count(*) DESC, e.name LIMIT ?",
            (owner, *grams, _SEARCH_CANDIDATES),
        ) as cursor:
            candidates = [_entity(row) for row in await cursor.fetchall()]
        scored = [
            ScoredEntity(entity, round(similarity(query_key, entity.key), 4))
            for entity in candidates
        ]
        scored = [s for s in scored if s.score >= _MIN_SIMILARITY]
        scored.sort(key=lambda s: (-s.score, s.entity.name))
        return scored[:limit]

    async def get_entity(self, owner: str, entity_id: str, top: int = 5) -> EntityDetail | None:
        db = self.reader
        async with db.execute(
            "SELECT id, name, type, key FROM entities WHERE owner = ? AND id = ?",
            (owner, entity_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        async with db.execute(
            "SELECT count(*) FROM edges WHERE source_id = ?", (entity_id,)
        ) as cursor:
            degree_row = await cursor.fetchone()
        async with db.execute(
            "SELECT d.id, d.title, sum(m.count) AS n FROM mentions m "
            "JOIN chunks c ON c.owner = m.owner AND c.id = m.chunk_id "
            "JOIN documents d ON d.owner = c.owner AND d.id = c.document_id "
            "WHERE m.owner = ? AND m.entity_id = ? GROUP BY d.id ORDER BY n DESC, d.id LIMIT ?",
            (owner, entity_id, top),
        ) as cursor:
            documents = [DocumentMentions(r[0], r[1], int(r[2])) for r in await cursor.fetchall()]
        async with db.execute(
            "SELECT coalesce(sum(count), 0) FROM mentions WHERE entity_id = ?", (entity_id,)
        ) as cursor:
            mention_row = await cursor.fetchone()
        return EntityDetail(
            entity=_entity(row),
            degree=int(degree_row[0]) if degree_row else 0,
            mentions=int(mention_row[0]) if mention_row else 0,
            top_documents=tuple(documents),
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
        db = self.reader
        async with db.execute(
            "SELECT id, name, type, key FROM entities WHERE owner = ? AND id = ?",
            (owner, entity_id),
        ) as cursor:
            start = await cursor.fetchone()
        if start is None:
            return None
        type_filter = f"AND e.type IN ({_marks(types)})" if types else ""
        async with db.execute(
            f"""
            WITH RECURSIVE walk(id, depth) AS (
                SELECT ?, 0
                UNION
                SELECT edges.target_id, walk.depth + 1 FROM walk
                JOIN edges ON edges.source_id = walk.id
                WHERE walk.depth < ? AND edges.weight >= ? AND edges.owner = ?
                LIMIT {_MAX_VISITED}
            )
            SELECT e.id, e.name, e.type, e.key, min(walk.depth) AS distance
            FROM walk JOIN entities e ON e.id = walk.id
            WHERE e.owner = ? AND e.id != ? {type_filter}
            GROUP BY e.id ORDER BY distance, e.name LIMIT ?
            """,
            (entity_id, depth, min_weight, owner, owner, entity_id, *types, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        entities = [_entity(start), *(_entity(row) for row in rows)]
        distances = {entity_id: 0, **{row[0]: int(row[4]) for row in rows}}
        relations = await self._relations_among(
            owner, [e.id for e in entities], min_weight, limit * 4
        )
        return Subgraph(tuple(entities), tuple(relations), distances)

    async def _relations_among(
        self, owner: str, ids: Sequence[str], min_weight: int, limit: int
    ) -> list[Relation]:
        marks = _marks(ids)
        async with self.reader.execute(
            f"SELECT source_id, target_id, weight FROM edges WHERE owner = ? "
            f"AND source_id IN ({marks}) AND target_id IN ({marks}) "
            f"AND source_id < target_id AND weight >= ? "
            f"ORDER BY weight DESC, source_id, target_id LIMIT ?",
            (owner, *ids, *ids, min_weight, limit),
        ) as cursor:
            return [Relation(r[0], r[1], int(r[2])) for r in await cursor.fetchall()]

    async def related_documents(
        self,
        owner: str,
        chunk_ids: Sequence[str],
        *,
        exclude_documents: Sequence[str],
        limit: int,
    ) -> list[RelatedDocument]:
        # ``NOT IN (NULL)`` would exclude everything: no clause at all when nothing is excluded.
        excluded = (
            f"WHERE c.document_id NOT IN ({_marks(exclude_documents)})" if exclude_documents else ""
        )
        async with self.reader.execute(
            f"""
            WITH hit AS (
                SELECT DISTINCT entity_id FROM mentions
                WHERE owner = ? AND chunk_id IN ({_marks(chunk_ids)}) LIMIT ?
            )
            SELECT c.document_id, d.title, e.name, SUM(m.count) AS weight
            FROM hit
            JOIN mentions m ON m.entity_id = hit.entity_id AND m.owner = ?
            JOIN chunks c ON c.owner = m.owner AND c.id = m.chunk_id
            JOIN documents d ON d.owner = c.owner AND d.id = c.document_id
            JOIN entities e ON e.id = m.entity_id
            {excluded}
            GROUP BY c.document_id, m.entity_id
            """,
            (
                owner,
                *chunk_ids,
                _RELATED_MAX_ENTITIES,
                owner,
                *exclude_documents,
            ),
        ) as cursor:
            rows = await cursor.fetchall()
        found: dict[str, tuple[str, list[tuple[int, str]]]] = {}
        for document_id, title, name, weight in rows:
            found.setdefault(document_id, (title, []))[1].append((-int(weight), name))
        ranked = sorted(found.items(), key=lambda item: (-len(item[1][1]), item[0]))[:limit]
        return [
            RelatedDocument(doc, title, len(names), tuple(n for _, n in sorted(names)[:5]))
            for doc, (title, names) in ranked
        ]

    async def shortest_path(
        self, owner: str, source_id: str, target_id: str, *, max_depth: int
    ) -> Path | None:
        """Breadth-first from both ends, one indexed query per level.

        A recursive CTE cannot remember which nodes earlier levels visited, so it enumerates
        paths rather than nodes; levels from both ends keep the work to the frontier sizes.
        """
        db = self.reader
        async with db.execute(
            f"SELECT id, name, type, key FROM entities WHERE owner = ? "
            f"AND id IN ({_marks([source_id, target_id])})",
            (owner, source_id, target_id),
        ) as cursor:
            found = {row[0]: _entity(row) for row in await cursor.fetchall()}
        if source_id not in found or target_id not in found:
            return None
        if source_id == target_id:
            return Path((found[source_id],), ())
        parents: list[dict[str, str | None]] = [{source_id: None}, {target_id: None}]
        frontiers: list[set[str]] = [{source_id}, {target_id}]
        meeting: str | None = None
        for _ in range(max_depth):
            side = 0 if len(frontiers[0]) <= len(frontiers[1]) else 1
            frontier = sorted(frontiers[side])
            if not frontier:
                return None
            next_frontier: set[str] = set()
            async with db.execute(
                f"SELECT source_id, target_id FROM edges WHERE owner = ? "
                f"AND source_id IN ({_marks(frontier)}) LIMIT {_MAX_VISITED}",
                (owner, *frontier),
            ) as cursor:
                for parent, child in await cursor.fetchall():
                    if child in parents[side]:
                        continue
                    parents[side][child] = parent
                    next_frontier.add(child)
                    if child in parents[1 - side]:
                        meeting = child
                        break
            frontiers[side] = next_frontier
            if meeting is not None:
                break
        if meeting is None:
            return None
        ids = _walk_back(parents[0], meeting)[::-1] + _walk_back(parents[1], meeting)[1:]
        async with db.execute(
            f"SELECT id, name, type, key FROM entities WHERE id IN ({_marks(ids)})", ids
        ) as cursor:
            by_id = {row[0]: _entity(row) for row in await cursor.fetchall()}
        relations = []
        for a, b in itertools.pairwise(ids):
            async with db.execute(
                "SELECT weight FROM edges WHERE source_id = ? AND target_id = ?", (a, b)
            ) as cursor:
                row = await cursor.fetchone()
            relations.append(Relation(*canonical_pair(a, b), weight=int(row[0]) if row else 0))
        return Path(tuple(by_id[i] for i in ids), tuple(relations))

    async def document_graph(self, owner: str, document_id: str, limit: int) -> Subgraph | None:
        db = self.reader
        async with db.execute(
            "SELECT 1 FROM documents WHERE owner = ? AND id = ?", (owner, document_id)
        ) as cursor:
            if await cursor.fetchone() is None:
                return None
        async with db.execute(
            "SELECT e.id, e.name, e.type, e.key, sum(m.count) AS n FROM chunks c "
            "JOIN mentions m ON m.owner = c.owner AND m.chunk_id = c.id "
            "JOIN entities e ON e.id = m.entity_id "
            "WHERE c.owner = ? AND c.document_id = ? GROUP BY e.id ORDER BY n DESC, e.name "
            "LIMIT ?",
            (owner, document_id, limit),
        ) as cursor:
            entities = [_entity(row) for row in await cursor.fetchall()]
        ids = {e.id for e in entities}
        async with db.execute(
            "SELECT source_id, target_id, item FROM evidence WHERE owner = ? AND document_id = ? "
            "ORDER BY source_id, target_id, item",
            (owner, document_id),
        ) as cursor:
            grouped: dict[tuple[str, str], list[str]] = {}
            for a, b, item in await cursor.fetchall():
                if a in ids and b in ids:
                    grouped.setdefault((a, b), []).append(item)
        relations = [
            Relation(a, b, weight=len(items), evidence=tuple(items))
            for (a, b), items in grouped.items()
        ]
        relations.sort(key=lambda r: (-r.weight, r.source_id, r.target_id))
        return Subgraph(tuple(entities), tuple(relations[: limit * 4]))


def _walk_back(parents: dict[str, str | None], node: str) -> list[str]:
    chain = [node]
    parent = parents.get(node)
    while parent is not None:
        chain.append(parent)
        parent = parents.get(parent)
    return chain


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values)) if values else "NULL"


def _entity(row: Sequence[object]) -> Entity:
    return Entity(id=str(row[0]), name=str(row[1]), type=str(row[2]), key=str(row[3]))
