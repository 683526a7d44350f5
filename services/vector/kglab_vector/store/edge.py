"""The embedded adapter: Qdrant's own engine in process (``qdrant-edge-py``), for ``make dev``.

Qdrant Edge is the server's storage and search engine (segments, write-ahead log, payload
indexes, sparse inverted index with IDF, the Query API's prefetch and reciprocal rank fusion)
as a library: no server, no network. It replaces qdrant-client's local mode, a scan written in
Python (6.4 s p95 per hybrid query at 100,000 chunks, adr/0025), and keeps the server's
semantics: the same named vectors, the same owner filter on a tenant keyword index, the same
RRF (k = 2, the server's default).

One Edge shard is one collection. The layout mirrors the server adapter's alias: a small file
``<alias>.json`` in the folder names the shard directory in use (one per index space,
``<alias>__<model>_<hash>``, with the same vector-less point recording its space). A start with
another model refuses, or re-embeds every chunk into a new shard and then replaces the file in
one atomic rename, so searches never see mixed vectors.

Edge holds Python's GIL while it works (measured: a search at 100,000 chunks holds it for a few
milliseconds; building HNSW graphs with ``optimize()`` held it for minutes), so this adapter
never calls ``optimize()``: filtered searches are exact scans of the owner's points on Qdrant's
plain index, under 50 ms p95 at 100,000 chunks of ten owners; one owner holding all 100,000
meets it on an idle machine and not under heavy load (adr/0025). Dense vectors are stored as
``turbo8`` by default, a quarter of float32's bytes per scanned vector (adr/0029). Calls run in
a worker thread, so the event loop is free whenever the library lets go of the GIL.

A shard directory can be open in one process only (Edge locks its write-ahead log): the
embedded store serves ``make dev``'s single process; several processes need the server.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from kglab_shared.logging import get_logger
from kglab_shared.settings import ConfigurationError
from kglab_vector.domain import (
    EmbeddingModelMismatchError,
    IndexedChunk,
    SearchFilters,
    SearchHit,
    SparseVector,
)
from kglab_vector.store.port import IndexSpace, Reembed
from kglab_vector.store.qdrant import (
    DENSE,
    INFO_KEY,
    INFO_POINT_ID,
    PAYLOAD_FIELDS,
    SPARSE,
    chunk_payload,
    hit_of,
    physical_name,
    record_of,
)

#: Qdrant's default constant of reciprocal rank fusion (server and client alike).
RRF_K = 2
#: How a new shard stores dense vectors (``EdgeVectorParams.datatype``). ``float32`` keeps them
#: exactly; ``float16`` and ``turbo16`` halve the bytes a filtered scan reads, ``turbo8``
#: (Qdrant's TurboQuant storage, originals not kept) quarters them: single-owner search at
#: 100,000 chunks about twice as fast under load, recall@10 unchanged, best cosines moved by at
#: most 0.001 (adr/0025, adr/0029: the default). An existing shard keeps its datatype.
DENSE_DATATYPES: dict[str, qe.VectorStorageDatatype] = {
    "float32": qe.VectorStorageDatatype.Float32,
    "float16": qe.VectorStorageDatatype.Float16,
    "turbo8": qe.VectorStorageDatatype.Turbo8,
    "turbo16": qe.VectorStorageDatatype.Turbo16,
}
_WRITE_BATCH = 256
_SCROLL_PAGE = 256
_log = get_logger(__name__)
_T = TypeVar("_T")


class EdgeVectorStore:
    def __init__(
        self,
        folder: Path | None,
        alias: str = "kglab_chunks",
        *,
        candidates: int = 50,
        dense_datatype: str = "turbo8",
    ) -> None:
        """``folder`` holds the shards; ``None``: a temporary folder removed on close (tests).
        ``dense_datatype`` (one of :data:`DENSE_DATATYPES`) applies to shards created here."""
        if dense_datatype not in DENSE_DATATYPES:
            raise ConfigurationError(
                f"Unknown dense vector datatype '{dense_datatype}' for the embedded vector "
                f"store; use one of {', '.join(DENSE_DATATYPES)}."
            )
        self._datatype = DENSE_DATATYPES[dense_datatype]
        self._temporary = folder is None
        self._folder = Path(tempfile.mkdtemp(prefix="kglab-edge-")) if folder is None else folder
        self._alias = alias
        self._candidates = candidates
        self._shard: qe.EdgeShard | None = None
        self._lock_file: Any = None
        self.space: IndexSpace | None = None

    # -- the shard and its index space ----------------------------------------------------

    async def open(self, space: IndexSpace, *, reembed: Reembed | None = None) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        self._hold_folder()
        try:
            await self._open(space, reembed)
        except BaseException:
            self._release_folder()
            raise

    def _hold_folder(self) -> None:
        """One process per folder (Edge locks its WAL too, with an unreadable error)."""
        handle = (self._folder / f"{self._alias}.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigurationError(
                f"The embedded vector store in {self._folder} is in use by another process "
                "(only one process can open it). Stop the other `make dev`, or give this one "
                "its own KGLAB_DATA_DIR."
            ) from None
        self._lock_file = handle

    def _release_folder(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            handle.close()

    async def _open(self, space: IndexSpace, reembed: Reembed | None) -> None:
        current = self._pointed_at()
        if current is None:
            # First start (or a crash between creating the shard and naming it).
            target = physical_name(self._alias, space)
            if (self._folder / target).is_dir():
                shard = await self._call(qe.EdgeShard.load, str(self._folder / target))
                recorded = await self._call(_read_space, shard)
                if recorded != space:
                    await self._call(shard.close)
                    raise EmbeddingModelMismatchError(self._mismatch(target, recorded, space))
            else:
                shard = await self._call(_create, self._folder / target, space, self._datatype)
            self._point_at(target)
        else:
            shard = await self._call(qe.EdgeShard.load, str(self._folder / current))
            recorded = await self._call(_read_space, shard)
            if recorded != space:
                if reembed is None:
                    await self._call(shard.close)
                    raise EmbeddingModelMismatchError(self._mismatch(current, recorded, space))
                shard = await self._migrate(shard, current, space, reembed)
        self._shard = shard
        self.space = space

    def _mismatch(self, collection: str, recorded: IndexSpace | None, space: IndexSpace) -> str:
        held = (
            f"vectors of model '{recorded.model_name}' ({recorded.dimension} dimensions, sparse "
            f"'{recorded.sparse_encoder}')"
            if recorded
            else "vectors of an unrecorded model"
        )
        return (
            f"The embedded Qdrant collection '{collection}' (alias '{self._alias}', in "
            f"{self._folder}) holds {held}, but this service embeds with '{space.model_name}' "
            f"({space.dimension} dimensions, sparse '{space.sparse_encoder}'). Mixing them "
            "would corrupt search. Set KGLAB_VECTOR_REEMBED_ON_MODEL_CHANGE=true to re-embed "
            "every chunk with the new model, or KGLAB_VECTOR_COLLECTION to use another "
            "collection."
        )

    def _pointer(self) -> Path:
        return self._folder / f"{self._alias}.json"

    def _pointed_at(self) -> str | None:
        try:
            recorded = json.loads(self._pointer().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        name = recorded.get("collection") if isinstance(recorded, dict) else None
        if not isinstance(name, str) or not (self._folder / name).is_dir():
            return None
        return name

    def _point_at(self, name: str) -> None:
        """Name the shard in use, atomically: a crash leaves the old name or the new one."""
        pointer = self._pointer()
        staged = pointer.with_suffix(".json.tmp")
        with staged.open("w", encoding="utf-8") as handle:
            json.dump({"collection": name}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, pointer)

    async def _migrate(
        self, old_shard: qe.EdgeShard, old: str, space: IndexSpace, reembed: Reembed
    ) -> qe.EdgeShard:
        """Re-embed every chunk of ``old`` into a new shard, then name the new one in use."""
        new = physical_name(self._alias, space)
        if new == old:
            await self._call(old_shard.close)
            raise EmbeddingModelMismatchError(
                f"The collection '{old}' does not record its index space; it cannot be migrated "
                "in place. Point KGLAB_VECTOR_COLLECTION at a new collection."
            )
        if (self._folder / new).exists():
            await asyncio.to_thread(shutil.rmtree, self._folder / new)
        new_shard = await self._call(_create, self._folder / new, space, self._datatype)
        moved = 0
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=_SCROLL_PAGE, with_payload=True, with_vector=False
            )
            points, offset = await self._call(old_shard.scroll, request)
            records = [
                record_of(p.payload) for p in points if p.payload and "owner_id" in p.payload
            ]
            if records:
                await self._call(_write, new_shard, await reembed(records))
                moved += len(records)
            if offset is None:
                break
        await self._call(new_shard.flush)
        self._point_at(new)
        await self._call(old_shard.close)
        await asyncio.to_thread(shutil.rmtree, self._folder / old, True)
        _log.warning("vector_collection_reembedded", old=old, new=new, chunks=moved)
        return new_shard

    # -- writes ---------------------------------------------------------------------------

    async def upsert(self, chunks: Sequence[IndexedChunk]) -> None:
        await self._call(_write, self._opened(), chunks)

    async def remove_other_chunks(
        self, owner_id: str, document_id: str, keep_chunk_ids: Sequence[str]
    ) -> None:
        condition = _scope(owner_id, SearchFilters(document_id=document_id))
        if keep_chunk_ids:
            condition = qe.Filter(
                must=condition.must,
                must_not=[
                    qe.FieldCondition(key="chunk_id", match=qe.MatchAny(list(keep_chunk_ids)))
                ],
            )
        await self._call(
            self._opened().update, qe.UpdateOperation.delete_points_by_filter(condition)
        )

    async def delete_document(self, owner_id: str, document_id: str) -> None:
        condition = _scope(owner_id, SearchFilters(document_id=document_id))
        await self._call(
            self._opened().update, qe.UpdateOperation.delete_points_by_filter(condition)
        )

    # -- reads ----------------------------------------------------------------------------

    async def count(self, owner_id: str, document_id: str | None = None) -> int:
        request = qe.CountRequest(filter=_scope(owner_id, SearchFilters(document_id)), exact=True)
        return int(await self._call(self._opened().count, request))

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
            qe.SparseVector(indices=sparse.indices, values=sparse.values)
            if sparse is not None and sparse.indices
            else None
        )
        selector = qe.PayloadSelector.Include(PAYLOAD_FIELDS)
        if dense is not None and sparse_query is not None:
            candidates = max(self._candidates, 4 * limit)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(
                        limit=candidates,
                        query=qe.Query.Nearest(dense, using=DENSE),
                        filter=scope,
                        score_threshold=floor,
                    ),
                    qe.Prefetch(
                        limit=candidates,
                        query=qe.Query.Nearest(sparse_query, using=SPARSE),
                        filter=scope,
                    ),
                ],
                # Both candidate lists are already scoped to the owner; fusion only reorders.
                # The 0.9.0 stubs type the query as ``Fusion``, not its variant ``Fusion.Rrf``.
                query=qe.Fusion.Rrf(k=RRF_K),  # type: ignore[arg-type]
                with_payload=selector,
            )
        elif dense is not None:
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(dense, using=DENSE),
                filter=scope,
                score_threshold=floor,
                with_payload=selector,
            )
        elif sparse_query is not None:
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(sparse_query, using=SPARSE),
                filter=scope,
                with_payload=selector,
            )
        else:
            return []
        points = await self._call(self._opened().query, request)
        return [hit_of(p.payload or {}, p.score) for p in points]

    async def ping(self) -> None:
        await self._call(self._opened().info)

    async def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            await self._call(shard.flush)
            await self._call(shard.close)
        self._release_folder()
        if self._temporary:
            await asyncio.to_thread(shutil.rmtree, self._folder, True)

    # -- helpers --------------------------------------------------------------------------

    def _opened(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("The embedded vector store is not open.")
        return self._shard

    @staticmethod
    async def _call(function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(function, *args)


def _create(path: Path, space: IndexSpace, datatype: qe.VectorStorageDatatype) -> qe.EdgeShard:
    """A new shard for ``space``: the server adapter's vectors, payload indexes and info point."""
    dense = qe.EdgeVectorParams(
        size=space.dimension, distance=qe.Distance.Cosine, datatype=datatype
    )
    config = qe.EdgeConfig(
        vectors={DENSE: dense},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
    shard = qe.EdgeShard.create(str(path), config)
    # Every query filters by owner: a tenant index keeps each owner's points together.
    shard.update(
        qe.UpdateOperation.create_field_index("owner_id", qe.KeywordIndexParams(is_tenant=True))
    )
    for field in ("document_id", "media_type", "chunk_id"):
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    info = {
        "model_name": space.model_name,
        "dimension": space.dimension,
        "sparse_encoder": space.sparse_encoder,
    }
    shard.update(
        qe.UpdateOperation.upsert_points(
            [qe.Point(id=INFO_POINT_ID, vector={}, payload={INFO_KEY: info})]
        )
    )
    shard.flush()
    return shard


def _read_space(shard: qe.EdgeShard) -> IndexSpace | None:
    points = shard.retrieve([INFO_POINT_ID], with_payload=True, with_vector=False)
    if not points or not points[0].payload or INFO_KEY not in points[0].payload:
        return None
    info: dict[str, Any] = points[0].payload[INFO_KEY]
    return IndexSpace(
        model_name=str(info.get("model_name")),
        dimension=int(info.get("dimension", 0)),
        sparse_encoder=str(info.get("sparse_encoder")),
    )


def _write(shard: qe.EdgeShard, chunks: Sequence[IndexedChunk]) -> None:
    for start in range(0, len(chunks), _WRITE_BATCH):
        points = [_point(c) for c in chunks[start : start + _WRITE_BATCH]]
        shard.update(qe.UpdateOperation.upsert_points(points))


def _point(chunk: IndexedChunk) -> qe.Point:
    record = chunk.record
    vector: dict[str, Any] = {DENSE: chunk.dense}
    if chunk.sparse.indices:
        vector[SPARSE] = qe.SparseVector(indices=chunk.sparse.indices, values=chunk.sparse.values)
    return qe.Point(id=record.point_id, vector=vector, payload=chunk_payload(record))


def _scope(owner_id: str, filters: SearchFilters) -> qe.Filter:
    must: list[Any] = [qe.FieldCondition(key="owner_id", match=qe.MatchValue(owner_id))]
    if filters.document_id is not None:
        must.append(qe.FieldCondition(key="document_id", match=qe.MatchValue(filters.document_id)))
    if filters.media_type is not None:
        must.append(qe.FieldCondition(key="media_type", match=qe.MatchValue(filters.media_type)))
    return qe.Filter(must=must)
