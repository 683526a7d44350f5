"""The Qdrant server adapter, through ``AsyncQdrantClient`` (``url=``). The service's embedded
store is Qdrant Edge (``edge.py``, adr/0025); qdrant-client's local mode (``path=`` or
``:memory:``) runs this same code in the contract tests, where no server exists.

Layout: the service talks to an alias (``kglab_chunks``) that points at one physical collection
per index space (``kglab_chunks__<model>_<hash>``). Each physical collection holds one
vector-less point recording its space (model name, dimension, sparse encoder); a start with a
different model finds the mismatch there and refuses, or, when asked, re-embeds every chunk into
a new collection and moves the alias in one atomic step, so searches never see mixed vectors.

Every chunk is one point with a named dense vector (cosine) and a named sparse vector whose IDF
Qdrant applies (``Modifier.IDF``); hybrid search prefetches both and fuses them with reciprocal
rank fusion in one Query API call.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from kglab_shared.logging import get_logger
from kglab_vector.domain import (
    POINT_NAMESPACE,
    ChunkRecord,
    EmbeddingModelMismatchError,
    IndexedChunk,
    SearchFilters,
    SearchHit,
    SparseVector,
)
from kglab_vector.store.port import IndexSpace, Reembed

DENSE = "dense"
SPARSE = "sparse"
INFO_KEY = "kglab_index_space"
#: The one vector-less point per collection that records its index space.
INFO_POINT_ID = str(uuid.uuid5(POINT_NAMESPACE, "kglab:index-space"))
#: The payload fields a search returns (the server adapter and the embedded one alike).
PAYLOAD_FIELDS = [
    "owner_id",
    "document_id",
    "chunk_id",
    "position",
    "text",
    "title",
    "heading",
    "media_type",
]
_WRITE_BATCH = 256
_SCROLL_PAGE = 256
_log = get_logger(__name__)


def physical_name(alias: str, space: IndexSpace) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", space.model_name.lower()).strip("-")[:48]
    key = f"{space.model_name}|{space.dimension}|{space.sparse_encoder}"
    return f"{alias}__{slug}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"


class QdrantVectorStore:
    def __init__(
        self,
        client: AsyncQdrantClient,
        alias: str = "kglab_chunks",
        *,
        local: bool,
        candidates: int = 50,
    ) -> None:
        """``local``: Qdrant's in-process mode, which has no payload indexes to create."""
        self._client = client
        self._alias = alias
        self._local = local
        self._candidates = candidates
        self.space: IndexSpace | None = None

    # -- the collection and its index space -----------------------------------------------

    async def open(self, space: IndexSpace, *, reembed: Reembed | None = None) -> None:
        current = await self._alias_target()
        if current is None:
            # First start (or a crash between creating the collection and the alias).
            target = physical_name(self._alias, space)
            if await self._client.collection_exists(target):
                await self._check_space(target, space)
            else:
                await self._create(target, space)
            await self._client.update_collection_aliases(
                change_aliases_operations=[
                    qm.CreateAliasOperation(
                        create_alias=qm.CreateAlias(collection_name=target, alias_name=self._alias)
                    )
                ]
            )
        else:
            recorded = await self._read_space(current)
            if recorded != space:
                if reembed is None:
                    raise EmbeddingModelMismatchError(self._mismatch(current, recorded, space))
                await self._migrate(current, space, reembed)
        self.space = space

    def _mismatch(self, collection: str, recorded: IndexSpace | None, space: IndexSpace) -> str:
        held = (
            f"vectors of model '{recorded.model_name}' ({recorded.dimension} dimensions, sparse "
            f"'{recorded.sparse_encoder}')"
            if recorded
            else "vectors of an unrecorded model"
        )
        return (
            f"The Qdrant collection '{collection}' (alias '{self._alias}') holds {held}, but this "
            f"service embeds with '{space.model_name}' ({space.dimension} dimensions, sparse "
            f"'{space.sparse_encoder}'). Mixing them would corrupt search. Set "
            "KGLAB_VECTOR_REEMBED_ON_MODEL_CHANGE=true to re-embed every chunk with the new "
            "model, or KGLAB_VECTOR_COLLECTION to use another collection."
        )

    async def _alias_target(self) -> str | None:
        for alias in (await self._client.get_aliases()).aliases:
            if alias.alias_name == self._alias:
                return alias.collection_name
        return None

    async def _create(self, name: str, space: IndexSpace) -> None:
        await self._client.create_collection(
            name,
            vectors_config={
                DENSE: qm.VectorParams(size=space.dimension, distance=qm.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        )
        if not self._local:
            # Every query filters by owner: a tenant index keeps each owner's points together.
            await self._client.create_payload_index(
                name,
                "owner_id",
                field_schema=qm.KeywordIndexParams(
                    type=qm.KeywordIndexType.KEYWORD, is_tenant=True
                ),
                wait=True,
            )
            for field in ("document_id", "media_type", "chunk_id"):
                await self._client.create_payload_index(
                    name, field, field_schema=qm.PayloadSchemaType.KEYWORD, wait=True
                )
        await self._client.upsert(
            name,
            points=[
                qm.PointStruct(
                    id=INFO_POINT_ID,
                    vector={},
                    payload={
                        INFO_KEY: {
                            "model_name": space.model_name,
                            "dimension": space.dimension,
                            "sparse_encoder": space.sparse_encoder,
                        }
                    },
                )
            ],
            wait=True,
        )

    async def _read_space(self, collection: str) -> IndexSpace | None:
        points = await self._client.retrieve(collection, ids=[INFO_POINT_ID], with_payload=True)
        if not points or not points[0].payload or INFO_KEY not in points[0].payload:
            return None
        info: dict[str, Any] = points[0].payload[INFO_KEY]
        recorded = IndexSpace(
            model_name=str(info.get("model_name")),
            dimension=int(info.get("dimension", 0)),
            sparse_encoder=str(info.get("sparse_encoder")),
        )
        # The collection's own configuration must agree with what it records.
        config = (await self._client.get_collection(collection)).config.params.vectors
        size = config[DENSE].size if isinstance(config, dict) and DENSE in config else None
        if size != recorded.dimension:
            return None
        return recorded

    async def _check_space(self, collection: str, space: IndexSpace) -> None:
        recorded = await self._read_space(collection)
        if recorded != space:
            raise EmbeddingModelMismatchError(self._mismatch(collection, recorded, space))

    async def _migrate(self, old: str, space: IndexSpace, reembed: Reembed) -> None:
        """Re-embed every chunk of ``old`` into a fresh collection, then move the alias to it.

        Until the alias moves, searches keep using the old collection; a crash part-way leaves
        the alias where it was and the next start begins the copy again.
        """
        new = physical_name(self._alias, space)
        if new == old:
            raise EmbeddingModelMismatchError(
                f"The collection '{old}' does not record its index space; it cannot be migrated "
                "in place. Point KGLAB_VECTOR_COLLECTION at a new collection."
            )
        if await self._client.collection_exists(new):
            await self._client.delete_collection(new)
        await self._create(new, space)
        moved = 0
        offset: Any = None
        while True:
            points, offset = await self._client.scroll(
                old, limit=_SCROLL_PAGE, offset=offset, with_payload=True, with_vectors=False
            )
            records = [
                record_of(p.payload) for p in points if p.payload and "owner_id" in p.payload
            ]
            if records:
                await self._write(new, await reembed(records))
                moved += len(records)
            if offset is None:
                break
        await self._client.update_collection_aliases(
            change_aliases_operations=[
                qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self._alias)),
                qm.CreateAliasOperation(
                    create_alias=qm.CreateAlias(collection_name=new, alias_name=self._alias)
                ),
            ]
        )
        await self._client.delete_collection(old)
        _log.warning("vector_collection_reembedded", old=old, new=new, chunks=moved)

    # -- writes ---------------------------------------------------------------------------

    async def upsert(self, chunks: Sequence[IndexedChunk]) -> None:
        await self._write(self._alias, chunks)

    async def _write(self, collection: str, chunks: Sequence[IndexedChunk]) -> None:
        for start in range(0, len(chunks), _WRITE_BATCH):
            points = [_point(c) for c in chunks[start : start + _WRITE_BATCH]]
            await self._client.upsert(collection, points=points, wait=True)

    async def remove_other_chunks(
        self, owner_id: str, document_id: str, keep_chunk_ids: Sequence[str]
    ) -> None:
        condition = _scope(owner_id, SearchFilters(document_id=document_id))
        if keep_chunk_ids:
            condition.must_not = [
                qm.FieldCondition(key="chunk_id", match=qm.MatchAny(any=list(keep_chunk_ids)))
            ]
        await self._client.delete(
            self._alias, points_selector=qm.FilterSelector(filter=condition), wait=True
        )

    async def delete_document(self, owner_id: str, document_id: str) -> None:
        await self._client.delete(
            self._alias,
            points_selector=qm.FilterSelector(
                filter=_scope(owner_id, SearchFilters(document_id=document_id))
            ),
            wait=True,
        )

    # -- reads ----------------------------------------------------------------------------

    async def count(self, owner_id: str, document_id: str | None = None) -> int:
        result = await self._client.count(
            self._alias, count_filter=_scope(owner_id, SearchFilters(document_id)), exact=True
        )
        return int(result.count)

    async def search(
        self,
        owner_id: str,
        *,
        dense: list[float] | None,
        sparse: SparseVector | None,
        limit: int,
        filters: SearchFilters,
        dense_floor: float = 0.0,
    ) -> list[SearchHit]:
        scope = _scope(owner_id, filters)
        floor = dense_floor if dense_floor > 0 else None
        sparse_query = (
            qm.SparseVector(indices=sparse.indices, values=sparse.values)
            if sparse is not None and sparse.indices
            else None
        )
        selector = qm.PayloadSelectorInclude(include=PAYLOAD_FIELDS)
        if dense is not None and sparse_query is not None:
            candidates = max(self._candidates, 4 * limit)
            response = await self._client.query_points(
                self._alias,
                prefetch=[
                    qm.Prefetch(
                        query=dense,
                        using=DENSE,
                        filter=scope,
                        limit=candidates,
                        score_threshold=floor,
                    ),
                    qm.Prefetch(query=sparse_query, using=SPARSE, filter=scope, limit=candidates),
                ],
                # Both candidate lists are already scoped to the owner; fusion only reorders.
                query=qm.FusionQuery(fusion=qm.Fusion.RRF),
                limit=limit,
                with_payload=selector,
            )
        elif dense is not None:
            response = await self._client.query_points(
                self._alias,
                query=dense,
                using=DENSE,
                query_filter=scope,
                limit=limit,
                score_threshold=floor,
                with_payload=selector,
            )
        elif sparse_query is not None:
            response = await self._client.query_points(
                self._alias,
                query=sparse_query,
                using=SPARSE,
                query_filter=scope,
                limit=limit,
                with_payload=selector,
            )
        else:
            return []
        return [hit_of(p.payload or {}, p.score) for p in response.points]

    async def ping(self) -> None:
        await self._client.get_collection(self._alias)

    async def close(self) -> None:
        await self._client.close()


def _scope(owner_id: str, filters: SearchFilters) -> qm.Filter:
    must: list[qm.Condition] = [
        qm.FieldCondition(key="owner_id", match=qm.MatchValue(value=owner_id))
    ]
    if filters.document_id is not None:
        must.append(
            qm.FieldCondition(key="document_id", match=qm.MatchValue(value=filters.document_id))
        )
    if filters.media_type is not None:
        must.append(
            qm.FieldCondition(key="media_type", match=qm.MatchValue(value=filters.media_type))
        )
    return qm.Filter(must=must)


def chunk_payload(record: ChunkRecord) -> dict[str, Any]:
    """A chunk's point payload: what filters match on and what a hit shows."""
    return {
        "owner_id": record.owner_id,
        "document_id": record.document_id,
        "chunk_id": record.chunk_id,
        "position": record.position,
        "text": record.text,
        "title": record.title,
        "heading": record.heading,
        "media_type": record.media_type,
    }


def _point(chunk: IndexedChunk) -> qm.PointStruct:
    record = chunk.record
    return qm.PointStruct(
        id=record.point_id,
        vector={
            DENSE: chunk.dense,
            SPARSE: qm.SparseVector(indices=chunk.sparse.indices, values=chunk.sparse.values),
        },
        payload=chunk_payload(record),
    )


def record_of(payload: dict[str, Any]) -> ChunkRecord:
    return ChunkRecord(
        owner_id=str(payload["owner_id"]),
        document_id=str(payload["document_id"]),
        chunk_id=str(payload["chunk_id"]),
        position=int(payload.get("position") or 0),
        text=str(payload.get("text") or ""),
        title=str(payload.get("title") or ""),
        heading=payload.get("heading"),
        media_type=payload.get("media_type"),
    )


def hit_of(payload: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(
        document_id=str(payload.get("document_id", "")),
        chunk_id=str(payload.get("chunk_id", "")),
        position=int(payload.get("position") or 0),
        title=str(payload.get("title") or ""),
        heading=payload.get("heading"),
        text=str(payload.get("text") or ""),
        score=float(score),
    )
