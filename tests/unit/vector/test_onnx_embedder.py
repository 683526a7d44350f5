"""The real embedder: pinned files checked, 384 unit-length dimensions, deterministic, and
sentences that mean the same land closer than unrelated ones. Loads the model (about 1 s)."""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kglab_vector.domain import ModelFileError
from kglab_vector.embedding.onnx import (
    MINILM_L6_V2_INT8,
    ModelFile,
    OnnxEmbedder,
    installed_file,
)


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder(threads=1, batch_size=4)


def test_vectors_have_the_models_dimension_and_unit_length(embedder: OnnxEmbedder) -> None:
    vectors = embedder.embed_documents(["Salt is mined here.", "", "x" * 5000])
    assert embedder.dimension == 384
    assert embedder.model_name == MINILM_L6_V2_INT8.name
    for vector in vectors:
        assert len(vector) == 384
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)


def test_embedding_is_deterministic_and_independent_of_batching(embedder: OnnxEmbedder) -> None:
    texts = [f"Sentence number {i} about rivers and towns." * (i % 3 + 1) for i in range(9)]
    batched = embedder.embed_documents(texts)
    alone = [embedder.embed_query(t) for t in texts]
    again = embedder.embed_documents(texts)
    assert batched == again
    for a, b in zip(batched, alone, strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: OnnxEmbedder) -> None:
    cat, kitten, revenue = embedder.embed_documents(
        [
            "The cat sat on the mat.",
            "A kitten is resting on a rug.",
            "Quarterly revenue grew by ten percent.",
        ]
    )
    assert _cosine(cat, kitten) > _cosine(cat, revenue) + 0.3


def test_a_damaged_tokenizer_file_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "tokenizer.json"
    shutil.copy(installed_file(MINILM_L6_V2_INT8.tokenizer), damaged)
    with damaged.open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(ModelFileError, match=r"SHA-256 .* not the pinned"):
        OnnxEmbedder(tokenizer_path=damaged)


def test_a_different_model_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "model.onnx"
    other.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="damaged or a different build"):
        OnnxEmbedder(model_path=other)
    with pytest.raises(ModelFileError, match="does not exist"):
        OnnxEmbedder(model_path=tmp_path / "missing.onnx")


def test_a_missing_package_is_named() -> None:
    with pytest.raises(ModelFileError, match=r"'no-such-model-package'.*make install"):
        installed_file(ModelFile("no-such-model-package", "model.onnx", "0" * 64))


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_a_query_does_not_wait_for_a_batch_of_documents(embedder: OnnxEmbedder) -> None:
    """Queries run on a session of their own: holding the documents' session (as a batch of
    chunks does for seconds) does not hold up a search's query vector."""
    with ThreadPoolExecutor(max_workers=1) as pool, embedder._lock:
        vector = pool.submit(embedder.embed_query, "rivers and towns").result(timeout=30)
    assert len(vector) == 384
