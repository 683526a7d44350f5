"""MinHash: near-duplicates score above 0.9, unrelated texts below 0.3."""

from __future__ import annotations

import random

import pytest

from kglab_ingestion.extraction import estimated_similarity, minhash_signature
from tests.data.generate import prose


def test_near_duplicates_are_above_0_9() -> None:
    original = prose(random.Random(1), 60)
    words = original.split()
    words[100] = "zeppelin"
    words[300] = "harpsichord"
    edited = " ".join(words).upper()  # case does not matter either
    similarity = estimated_similarity(minhash_signature(original), minhash_signature(edited))
    assert similarity > 0.9


def test_unrelated_texts_are_below_0_3() -> None:
    a = prose(random.Random(1), 60)
    b = prose(random.Random(2), 60)
    assert estimated_similarity(minhash_signature(a), minhash_signature(b)) < 0.3


def test_signatures_are_stable_and_sized() -> None:
    text = "The same words give the same signature every time."
    signature = minhash_signature(text, num_perm=64)
    assert len(signature) == 64
    assert signature == minhash_signature(text, num_perm=64)
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in signature)
    assert estimated_similarity(signature, signature) == 1.0


def test_short_and_empty_texts() -> None:
    assert estimated_similarity(minhash_signature("hello"), minhash_signature("hello")) == 1.0
    assert minhash_signature("") == [2**32 - 1] * 128


def test_signatures_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        estimated_similarity([1, 2], [1, 2, 3])
