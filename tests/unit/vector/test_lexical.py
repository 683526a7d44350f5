"""Tokenising, BM25 sparse vectors and the hashing embedder: pure functions, no I/O."""

from __future__ import annotations

import math

import pytest

from kglab_vector.embedding.hashing import HashingEmbedder
from kglab_vector.embedding.sparse import Bm25SparseEncoder
from kglab_vector.embedding.text import stem, term_index, terms


def test_terms_drop_stop_words_fold_case_and_strip_suffixes() -> None:
    assert terms("The Rivers were FLOODED by the rains") == ["river", "flood", "rain"]
    assert terms("mining") == ["mining"]  # "min" would be too short a stem
    assert stem("countries") == "country"
    assert stem("was") == "was"  # too short to strip
    assert terms("café CAFÉ") == ["café", "café"]


def test_term_index_is_stable_across_processes() -> None:
    # Fixed values: Python's salted hash() would differ between runs and break stored vectors.
    assert term_index("salt") == term_index("salt")
    assert term_index("salt") != term_index("sale")
    assert 0 <= term_index("anything") < 2**31 - 1


def test_bm25_weights_saturate_and_normalise_by_length() -> None:
    encoder = Bm25SparseEncoder()
    once = encoder.encode_document("salt")
    many = encoder.encode_document("salt " * 20)
    salt = term_index("salt")
    weight_once = once.values[once.indices.index(salt)]
    weight_many = many.values[many.indices.index(salt)]
    assert weight_many > weight_once
    assert weight_many < encoder.k1 + 1  # saturation bound

    short = encoder.encode_document("salt mine")
    long = encoder.encode_document("salt mine " + " ".join(f"word{i}" for i in range(200)))
    assert short.values[short.indices.index(salt)] > long.values[long.indices.index(salt)]
    assert short.indices == sorted(short.indices)


def test_query_vectors_weigh_each_distinct_term_once() -> None:
    query = Bm25SparseEncoder().encode_query("salt salt mine of the")
    assert len(query.indices) == 2
    assert query.values == [1.0, 1.0]
    assert Bm25SparseEncoder().encode_query("the of and").indices == []


def test_hashing_embedder_is_deterministic_unit_length_and_sized() -> None:
    embedder = HashingEmbedder(64)
    first = embedder.embed_query("Salt mining in deep shafts")
    again = HashingEmbedder(64).embed_documents(["Salt mining in deep shafts"])[0]
    assert first == again
    assert len(first) == 64 == embedder.dimension
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, rel_tol=1e-9)
    assert embedder.model_name == "kglab-hashing-v1-64"
    empty = embedder.embed_query("")
    assert math.isclose(sum(v * v for v in empty), 1.0)


def test_hashing_embedder_puts_shared_words_closer() -> None:
    embedder = HashingEmbedder(256)
    a, b, c = embedder.embed_documents(
        ["salt mining in deep shafts", "deep salt mining shafts", "a choir sings in spring"]
    )
    assert _cosine(a, b) > _cosine(a, c)


def test_hashing_embedder_refuses_silly_dimensions() -> None:
    with pytest.raises(ValueError, match="dimension"):
        HashingEmbedder(2)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))
