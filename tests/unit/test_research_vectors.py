"""The vector storage study's pure parts (research/vectors.py): ground truth, recall and
percentiles must be right, or every row of bench/results/vector_stores.json is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest

from research.vectors import (
    DIMENSION,
    OWNERS,
    exact_top_k,
    make_dataset,
    percentile,
    recall_at_k,
)


def test_recall_counts_the_true_neighbours_found_whatever_their_order() -> None:
    truth = [[1, 2, 3, 4], [5, 6]]
    assert recall_at_k([[4, 3, 2, 1], [6, 5]], truth, k=4) == 1.0
    assert recall_at_k([[1, 2, 9, 9], [5]], truth, k=4) == pytest.approx((2 / 4 + 1 / 2) / 2)
    assert recall_at_k([[9, 8, 7, 6], []], truth, k=4) == 0.0


def test_recall_only_looks_at_the_first_k_answers() -> None:
    assert recall_at_k([[9, 9, 1, 2]], [[1, 2]], k=2) == 0.0


def test_recall_refuses_answers_for_another_number_of_queries() -> None:
    with pytest.raises(ValueError, match="1 answers for 2 queries"):
        recall_at_k([[1]], [[1], [2]])


def test_recall_leaves_out_queries_with_nothing_to_find() -> None:
    assert recall_at_k([[1], []], [[1], []], k=1) == 1.0
    assert math.isnan(recall_at_k([[]], [[]]))


def test_exact_top_k_ranks_by_cosine_within_the_filter() -> None:
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    everything = np.ones((2, 4), dtype=bool)
    assert exact_top_k(vectors, queries, everything, k=2) == [[0, 1], [2, 1]]
    # The first query may not see point 0, the second sees points 0 and 3 only.
    allowed = np.array([[False, True, True, True], [True, False, False, True]])
    assert exact_top_k(vectors, queries, allowed, k=2) == [[1, 2], [0, 3]]
    # Fewer allowed points than k: only those come back.
    one = np.array([[False, False, True, False], [False, False, False, False]])
    assert exact_top_k(vectors, queries, one, k=3) == [[2], []]


def test_the_dataset_is_clustered_unit_vectors_with_owners_and_filters() -> None:
    data = make_dataset(500, 20, seed=1)
    assert data.vectors.shape == (500, DIMENSION)
    assert np.allclose(np.linalg.norm(data.vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(data.queries, axis=1), 1.0, atol=1e-5)
    assert sorted(set(data.owners.tolist())) == list(range(OWNERS))
    ten = data.allowed("10 owners")
    assert ten.shape == (20, 500)
    assert (ten.sum(axis=1) == 500 // OWNERS).all()
    assert data.allowed("1 owner").all()
    # Clustered: a query's nearest point is much closer than a typical one (on uniform random
    # 384-dimensional vectors both would be near 0).
    scores = data.queries @ data.vectors.T
    assert float(np.median(scores.max(axis=1))) > float(np.median(scores)) + 0.3
    # The same seed gives the same data, so both stores are measured on identical points.
    assert np.array_equal(make_dataset(500, 20, seed=1).vectors, data.vectors)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
