"""The embedder the service runs: its model loads in the background (requests wait for it, a
failure is named), and every way of running the ONNX model gives the same vectors."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from kglab_shared.health import ModelNotLoaded, StillLoading
from kglab_vector.embedding.background import BackgroundLoadedEmbedder
from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.onnx import MINILM_L6_V2_INT8, OnnxEmbedder


def hashing_space() -> tuple[str, int]:
    embedder = HashingEmbedder(64)
    return embedder.model_name, embedder.dimension


async def test_vectors_wait_for_the_model_and_readiness_follows_it() -> None:
    gate = threading.Event()

    def load() -> HashingEmbedder:
        assert gate.wait(10)
        return HashingEmbedder(64)

    name, dimension = hashing_space()
    embedder = BackgroundLoadedEmbedder(name, dimension, load).start()
    try:
        # The vector space is known before the model loads (the collection opens at once).
        assert (embedder.model_name, embedder.dimension) == (name, dimension)
        with pytest.raises(StillLoading, match="embedding_model is loading"):
            await embedder.check()
        pending = asyncio.create_task(asyncio.to_thread(embedder.embed_documents, ["a", "b"]))
        await asyncio.sleep(0.05)
        assert not pending.done()
    finally:
        gate.set()
    vectors = await asyncio.wait_for(pending, timeout=10)
    assert vectors == HashingEmbedder(64).embed_documents(["a", "b"])
    await embedder.check()  # up
    assert embedder.embed_query("a") == HashingEmbedder(64).embed_query("a")


async def test_a_model_of_another_space_is_refused_with_the_reason() -> None:
    embedder = BackgroundLoadedEmbedder("some-other-model", 64, lambda: HashingEmbedder(64))
    embedder.start()
    with pytest.raises(ModelNotLoaded, match="not the announced some-other-model"):
        await asyncio.to_thread(embedder.embed_query, "x")
    with pytest.raises(ModelNotLoaded, match="failed to load"):
        await embedder.check()


@pytest.mark.parametrize(
    "settings",
    [
        {"spinning": True},
        {"sort_by_length": False},
        {"pad_to_max": True},
        {"optimization": "basic"},
        {"batch_size": 3},
    ],
    ids=str,
)
def test_every_onnx_variant_gives_the_same_vectors(settings: dict[str, object]) -> None:
    texts = [
        "Marie Curie studied radioactivity in Paris.",
        "A short one.",
        "The harbour town traded salt, wool and copper with the river guilds for a century "
        "before the flood.",
        "Telescopes and pendulums.",
    ]
    default = np.asarray(OnnxEmbedder(threads=1, batch_size=2).embed_documents(texts))
    variant = np.asarray(OnnxEmbedder(threads=1, **settings).embed_documents(texts))  # type: ignore[arg-type]
    assert variant.shape == (len(texts), MINILM_L6_V2_INT8.dimension)
    assert float(np.abs(variant - default).max()) < 1e-4


def test_an_unknown_optimisation_level_is_refused() -> None:
    with pytest.raises(ValueError, match="optimization must be one of basic, extended, all"):
        OnnxEmbedder(optimization="maximum")
