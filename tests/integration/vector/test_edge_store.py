"""What only the embedded store has: one process per folder, refused with a readable error;
a dense datatype it does not know, refused before anything is created."""

from __future__ import annotations

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
