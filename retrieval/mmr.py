"""Maximal marginal relevance: diversify a candidate list (a pure function over arrays)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def mmr_select(
    relevance: npt.NDArray[np.floating],
    vectors: npt.NDArray[np.float32],
    top_k: int,
    lambda_: float,
) -> list[int]:
    """Pick ``top_k`` candidates by maximal marginal relevance (Carbonell & Goldstein, 1998).

    Each step takes the candidate maximising
    ``lambda_ * relevance[i] - (1 - lambda_) * max(cosine(i, j) for j already picked)``.
    ``relevance`` is first scaled to [0, 1] as ``(s - low) / (max - low)`` with
    ``low = min(0, min(s))``: non-negative scores (BM25, fused, positive cosines) are divided
    by the best one, so ``lambda_`` weighs the same whatever the score scale, and the least
    relevant candidate is not pushed to 0 as plain min-max scaling would. With
    ``lambda_ = 1`` the result is the candidates in descending relevance.

    Args:
        relevance: One relevance score per candidate, higher is better.
        vectors: Unit-length candidate vectors, shape ``(n, d)``.
        top_k: How many to pick.
        lambda_: Trade-off in [0, 1]: 1 is pure relevance, 0 pure novelty.

    Returns:
        Indices into the candidates, in pick order; ties go to the smaller index.
    """
    n = len(relevance)
    if n == 0 or top_k <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    low = min(0.0, float(rel.min()))
    spread = float(rel.max()) - low
    rel = (rel - low) / spread if spread > 0 else np.ones(n)
    sims = np.asarray(vectors, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64).T
    picked: list[int] = []
    redundancy = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    while len(picked) < min(top_k, n):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        objective = lambda_ * rel - (1.0 - lambda_) * penalty
        objective[~available] = -np.inf
        best = int(np.argmax(objective))  # first maximum: the smaller index wins a tie
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, sims[best])
    return picked
