"""Reciprocal rank fusion, MMR and reranking, on small hand-made examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from app.services.retrieval import mmr_select, rerank_hits, rrf_fuse
from core.types import Chunk, Hit


def hit(chunk_id: str, score: float = 0.0) -> Hit:
    return Hit(Chunk(chunk_id, "doc", f"text of {chunk_id}"), score)


def test_rrf_matches_a_hand_computed_example() -> None:
    dense = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.7)]
    keyword = [hit("c", 12.0), hit("d", 9.0), hit("a", 3.0)]
    fused = rrf_fuse([dense, keyword], k=60)
    # a: 1/61 + 1/63; c: 1/63 + 1/61 (a tie, broken by id); b: 1/62; d: 1/62 (tie).
    assert [h.chunk.id for h in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert fused[1].score == pytest.approx(1 / 61 + 1 / 63)
    assert fused[2].score == pytest.approx(1 / 62)
    assert fused[3].score == pytest.approx(1 / 62)


def test_rrf_ignores_scores_and_uses_k() -> None:
    one = [hit("x", 1000.0), hit("y", -5.0)]
    two = [hit("y", 0.1)]
    fused = rrf_fuse([one, two], k=1)
    assert [h.chunk.id for h in fused] == ["y", "x"]  # 1/3 + 1/2 beats 1/2
    assert fused[0].score == pytest.approx(1 / 3 + 1 / 2)
    assert rrf_fuse([[], []]) == []
    assert [h.chunk.id for h in rrf_fuse([one, []])] == ["x", "y"]


def test_rrf_counts_a_repeated_chunk_once_per_list() -> None:
    fused = rrf_fuse([[hit("a"), hit("a"), hit("b")]], k=0)
    assert [(h.chunk.id, h.score) for h in fused] == [("a", 1.0), ("b", pytest.approx(1 / 3))]


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


class LengthReranker:
    """Scores a passage by its length: a deterministic stand-in for a cross-encoder."""

    model_name = "length"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [float(len(p)) for p in passages]


def test_rerank_orders_by_the_reranker_and_reports_its_score() -> None:
    hits = [hit("a", 0.9), hit("bbb", 0.8), hit("cc", 0.7)]
    texts = [h.chunk.text for h in hits]
    out = rerank_hits(LengthReranker(), "q", hits, texts)
    assert [h.chunk.id for h in out] == ["bbb", "cc", "a"]
    assert [h.score for h in out] == [len("text of bbb"), len("text of cc"), len("text of a")]
    assert rerank_hits(LengthReranker(), "q", [], []) == []


def test_weighted_rrf_scales_each_list() -> None:
    dense = [hit("a"), hit("b")]
    keyword = [hit("b"), hit("c")]
    fused = rrf_fuse([dense, keyword], k=60, weights=[0.5, 1.0])
    # b: 0.5/62 + 1/61; c: 1/62; a: 0.5/61. With equal weights a (1/61) would beat c (1/62).
    assert [h.chunk.id for h in fused] == ["b", "c", "a"]
    assert fused[0].score == pytest.approx(0.5 / 62 + 1 / 61)
    assert fused[2].score == pytest.approx(0.5 / 61)
    plain = rrf_fuse([dense, keyword], k=60)
    assert [h.chunk.id for h in plain] == ["b", "a", "c"]
    with pytest.raises(ValueError, match="one non-negative weight per ranking"):
        rrf_fuse([dense, keyword], weights=[1.0])
    with pytest.raises(ValueError, match="one non-negative weight per ranking"):
        rrf_fuse([dense, keyword], weights=[1.0, -1.0])
