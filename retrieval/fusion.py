"""Reciprocal rank fusion of ranked hit lists (hybrid search).

A pure function over ``Hit`` lists; the fused hits carry ``kind="fused"``.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.types import Hit


def rrf_fuse(
    rankings: Sequence[Sequence[Hit]], k: int = 60, weights: Sequence[float] | None = None
) -> list[Hit]:
    """Fuse ranked lists by (weighted) reciprocal rank fusion (Cormack et al., 2009).

    A chunk's fused score is the sum, over the lists it appears in, of
    ``weight / (k + rank)`` with 1-based ranks; a list's own scores are ignored. A chunk
    listed twice in one list counts at its best rank there.

    Args:
        rankings: Hit lists, each best first.
        k: The RRF constant; larger values flatten the difference between top ranks.
        weights: One non-negative weight per list (all 1 when None, plain RRF).

    Returns:
        One hit per distinct chunk, carrying the fused score, best first; ties go to the
        smaller chunk id.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings) or any(w < 0 for w in weights):
        raise ValueError(f"need one non-negative weight per ranking, got {list(weights)}")
    scores: dict[str, float] = {}
    chunks: dict[str, Hit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        seen: set[str] = set()
        for rank, hit in enumerate(ranking, start=1):
            chunk_id = hit.chunk.id
            if chunk_id in seen:
                continue
            seen.add(chunk_id)
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
            chunks.setdefault(chunk_id, hit)
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))
    return [Hit(chunks[cid].chunk, scores[cid], "fused") for cid in order]
