from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.mmr import mmr_select


def unit(rows: Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(rows, dtype=np.float32)
    return arr / np.linalg.norm(arr, axis=1, keepdims=True)


def test_mmr_skips_near_duplicates_when_lambda_is_low() -> None:
    vectors = unit([[1, 0, 0], [0.99, 0.01, 0], [0, 1, 0], [0, 0, 1]])
    relevance = np.array([0.9, 0.89, 0.5, 0.4])
    assert mmr_select(relevance, vectors, 2, lambda_=1.0) == [0, 1]  # pure relevance
    assert mmr_select(relevance, vectors, 2, lambda_=0.3) == [0, 2]  # the duplicate waits
    assert mmr_select(relevance, vectors, 4, lambda_=0.3)[-1] == 1


def test_mmr_scales_relevance_so_lambda_means_the_same_for_any_score() -> None:
    vectors = unit([[1, 0], [0.98, 0.2], [0, 1]])
    small = np.array([0.031, 0.030, 0.020])  # fused scores
    large = small * 1000  # BM25-sized scores
    assert mmr_select(small, vectors, 3, 0.5) == mmr_select(large, vectors, 3, 0.5)
    assert mmr_select(np.array([]), vectors[:0], 3, 0.5) == []
    assert mmr_select(np.array([1.0, 1.0]), vectors[:2], 5, 0.5) == [0, 1]
