"""Retrieval building blocks: reciprocal rank fusion, MMR diversification, reranking.

Pure functions over ``Hit`` lists and vectors; no I/O, no web framework. ``SearchService``
chains them: candidates from the dense and/or keyword retriever, fused, optionally reranked by
a cross-encoder, optionally diversified, cut to ``top_k``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from core.types import Hit
from ingest.rerankers import Reranker


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
    return [Hit(chunks[cid].chunk, scores[cid]) for cid in order]


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


def rerank_hits(
    reranker: Reranker, query: str, hits: Sequence[Hit], texts: Sequence[str]
) -> list[Hit]:
    """Order ``hits`` by the reranker's score of ``(query, texts[i])``, best first.

    The hits carry the reranker's score; ties keep the incoming order.
    """
    if not hits:
        return []
    scores = reranker.score(query, texts)
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [Hit(hits[i].chunk, float(scores[i])) for i in order]
