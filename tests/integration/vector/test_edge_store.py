"""What only the embedded store has: one process per folder, refused with a readable error;
a dense datatype it does not know, refused before anything is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kglab_shared.settings import ConfigurationError
from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.service import Indexer
from kglab_vector.store.edge import EdgeVectorStore

SPACE = Indexer(HashingEmbedder(16), Bm25SparseEncoder()).space


async def test_a_folder_in_use_is_refused_until_it_is_closed(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path, "chunks")
    await first.open(SPACE)
    second = EdgeVectorStore(tmp_path, "chunks")
    with pytest.raises(ConfigurationError, match="in use by another process"):
        await second.open(SPACE)
    await first.close()
    await second.open(SPACE)
    assert await second.count("anyone") == 0
    await second.close()


async def test_a_temporary_store_leaves_nothing_behind() -> None:
    store = EdgeVectorStore(None, "chunks")
    await store.open(SPACE)
    folder = store._folder
    assert folder.is_dir()
    await store.close()
    await store.close()  # closing twice is harmless
    assert not folder.exists()


def test_an_unknown_dense_datatype_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="float32, float16, turbo8, turbo16"):
        EdgeVectorStore(None, "chunks", dense_datatype="float8")


async def test_a_shard_keeps_the_dense_datatype_it_was_created_with(tmp_path: Path) -> None:
    def persisted() -> str:
        # Edge's own record of the shard's configuration (documented: edge_config.json).
        (config,) = tmp_path.glob("chunks__*/edge_config.json")
        return str(json.loads(config.read_text())["vectors"]["dense"]["datatype"])

    store = EdgeVectorStore(tmp_path, "chunks", dense_datatype="turbo8")
    await store.open(SPACE)
    await store.close()
    assert persisted() == "turbo8"
    # Another setting later applies to new shards only: the vectors stored stay as they are.
    store = EdgeVectorStore(tmp_path, "chunks", dense_datatype="float32")
    await store.open(SPACE)
    assert await store.count("anyone") == 0
    await store.close()
    assert persisted() == "turbo8"
