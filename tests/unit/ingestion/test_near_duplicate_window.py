"""The worker's near-duplicate comparison: the same answer as ``estimated_similarity`` one by
one, from signatures cached by job id."""

from __future__ import annotations

import numpy as np

from kglab_ingestion.extraction import estimated_similarity, minhash_signature
from kglab_ingestion.worker import SignatureCache, best_match


def test_best_match_agrees_with_pairwise_similarity() -> None:
    base = "the quick brown fox jumps over the lazy dog " * 20
    texts = {
        "same": base,
        "close": base + "and then it sleeps",
        "far": "an entirely different text about graph databases and their indexes " * 10,
    }
    mine = minhash_signature(base + " with a tail")
    candidates = [
        (job_id, np.asarray(minhash_signature(text), dtype=np.uint64))
        for job_id, text in texts.items()
    ]
    best_id, best = best_match(mine, candidates)
    expected = max(
        ((estimated_similarity(mine, [int(v) for v in other]), job_id))
        for job_id, other in candidates
    )
    assert (best, best_id) == expected


def test_no_candidate_or_nothing_shared_is_no_match() -> None:
    assert best_match([1, 2, 3], []) == (None, 0.0)
    other = np.asarray([4, 5, 6], dtype=np.uint64)
    assert best_match([1, 2, 3], [("a", other)]) == (None, 0.0)


def test_signatures_of_another_length_are_skipped() -> None:
    short = np.asarray([1, 2], dtype=np.uint64)
    same = np.asarray([1, 2, 9], dtype=np.uint64)
    assert best_match([1, 2, 3], [("short", short), ("same", same)]) == ("same", 2 / 3)


def test_the_cache_drops_the_least_recently_used() -> None:
    cache = SignatureCache(2)
    cache.put("a", [1])
    cache.put("b", [2])
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", [3])
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache
    assert cache.get("missing") is None
