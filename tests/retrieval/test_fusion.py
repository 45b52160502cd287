"""Reciprocal rank fusion, MMR and reranking, on small hand-made examples."""

from __future__ import annotations

import pytest

from core.types import Chunk, Hit
from retrieval.fusion import keyword_floor, rrf_fuse, score_fuse


def hit(chunk_id: str, score: float = 0.0) -> Hit:
    return Hit(Chunk(chunk_id, "doc", f"text of {chunk_id}"), score)


def test_rrf_matches_a_hand_computed_example() -> None:
    dense = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.7)]
    keyword = [hit("c", 12.0), hit("d", 9.0), hit("a", 3.0)]
    fused = rrf_fuse([dense, keyword], k=60)
    # a: 1/61 + 1/63; c: 1/63 + 1/61 (a tie, broken by id); b: 1/62; d: 1/62 (tie).
    assert [h.chunk.id for h in fused] == ["a", "c", "b", "d"]
    assert {h.kind for h in fused} == {"fused"}
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


def test_zscore_fusion_matches_a_hand_computed_example() -> None:
    dense = [hit("a", 0.9), hit("b", 0.6), hit("c", 0.3)]
    keyword = [hit("c", 10.0), hit("d", 2.0)]
    fused = score_fuse([dense, keyword], "zscore", floors=[None, 0.0])

    def z(values: list[float]) -> list[float]:  # each list's scores and its floor, z-scored
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
        return [(v - mean) / spread for v in values]

    za, zb, zc, dense_floor = z([0.9, 0.6, 0.3, 0.3])  # dense floor: its lowest score
    kc, kd, keyword_floor = z([10.0, 2.0, 0.0])  # BM25 floor given: 0
    expected = {
        "a": za + keyword_floor,
        "b": zb + keyword_floor,
        "c": zc + kc,
        "d": dense_floor + kd,
    }
    assert {h.chunk.id: h.score for h in fused} == pytest.approx(expected)
    assert [h.chunk.id for h in fused] == sorted(expected, key=lambda c: -expected[c])
    assert {h.kind for h in fused} == {"fused"}


def test_a_lone_keyword_hit_still_counts() -> None:
    # BM25 found one chunk with the query's rare word; the dense order puts it last.
    dense = [hit("a", 0.50), hit("b", 0.48), hit("c", 0.46), hit("x", 0.40)]
    keyword = [hit("x", 7.5)]
    fused = score_fuse([dense, keyword], "zscore", floors=[None, 0.0], depth=50)
    assert fused[0].chunk.id == "x"
    assert fused[0].score > fused[1].score + 1
    # Min-max scaling caps each list at 1: x (0 + 1) only ties with a (1 + 0).
    scaled = score_fuse([dense, keyword], "minmax", floors=[None, 0.0], depth=50)
    assert {h.chunk.id: h.score for h in scaled[:2]} == {"a": 1.0, "x": 1.0}
    # Without the 49 zeros the list stands for, a list of one is just +1/-1 around its mean.
    assert score_fuse([dense, keyword], "zscore", floors=[None, 0.0])[0].chunk.id == "a"
    assert keyword_floor(keyword, 50) == 0.0
    assert keyword_floor(keyword * 50, 50) is None


def test_score_fusion_keeps_gaps_that_rank_fusion_forgets() -> None:
    # a leads the dense list by far, b leads BM25 by a hair: RRF ties them, z-scores do not.
    dense = [hit("a", 0.95), hit("b", 0.30), hit("c", 0.29), hit("d", 0.28)]
    keyword = [hit("b", 5.1), hit("a", 5.0), hit("c", 4.9), hit("d", 4.8)]
    assert [h.chunk.id for h in rrf_fuse([dense, keyword])][:2] == ["a", "b"]  # tie, by id
    assert rrf_fuse([dense, keyword])[0].score == rrf_fuse([dense, keyword])[1].score
    for method in ("zscore", "minmax"):
        fused = score_fuse([dense, keyword], method)
        assert [h.chunk.id for h in fused] == ["a", "b", "c", "d"]
        assert fused[0].score > fused[1].score


def test_minmax_fusion_and_edge_cases() -> None:
    dense = [hit("a", 0.8), hit("b", 0.4)]
    keyword = [hit("b", 3.0), hit("c", 1.0), hit("a", 0.0)]
    fused = score_fuse([dense, keyword], "minmax")
    assert {h.chunk.id: h.score for h in fused} == pytest.approx(
        {"a": 1.0 + 0.0, "b": 0.0 + 1.0, "c": 0.0 + 1 / 3}
    )
    assert [h.chunk.id for h in fused] == ["a", "b", "c"]  # a and b tie: smaller id first
    assert score_fuse([[], []]) == []
    assert [h.chunk.id for h in score_fuse([[hit("x", 2.0)], []])] == ["x"]
    twice = score_fuse([[hit("a", 1.0), hit("a", 0.0)]], "minmax")
    assert [(h.chunk.id, h.score) for h in twice] == [("a", 1.0)]
    with pytest.raises(ValueError, match="unknown normalisation"):
        score_fuse([dense], "softmax")
