"""Fusion of ranked hit lists (hybrid search): reciprocal rank, or normalised scores.

Pure functions over ``Hit`` lists; the fused hits carry ``kind="fused"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


def _z_scores(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _min_max(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min())
    return (values - values.min()) / span if span > 0 else np.ones_like(values)


NORMALISERS = {"zscore": _z_scores, "minmax": _min_max}
"""Per-list score normalisations ``score_fuse`` accepts."""


def score_fuse(
    rankings: Sequence[Sequence[Hit]],
    method: str = "zscore",
    floors: Sequence[float | None] | None = None,
    depth: int = 0,
) -> list[Hit]:
    """Fuse ranked lists by summing their normalised scores (CombSUM), with no weights.

    A chunk absent from a list is given that list's *floor*: ``floors[i]`` when it is not
    None (0 for a BM25 list that returned fewer hits than asked for: every other chunk lacks
    the query's words, ``keyword_floor``), else the list's lowest score. Each list's scores
    are normalised together with its floor: ``zscore`` (minus their mean, over their standard
    deviation) or ``minmax`` (scaled to [0, 1]). A given floor fills the list up to ``depth``
    values (the chunks that scored it), the list's lowest counts once more: so the statistics
    are those of the ``depth`` best scores, and a lone BM25 hit stands far above the rest
    instead of vanishing in a list of one. A chunk's fused score is the sum of its normalised
    scores over the lists. Unlike RRF the gaps between scores count: a
    dense hit far ahead of the rest stays ahead. A chunk listed twice in one list counts at
    its best score there.

    Args:
        rankings: Hit lists, each best first, each scored on its own scale.
        method: ``zscore`` or ``minmax``.
        floors: Per list, the raw score of an absent chunk, or None for the list's lowest.
        depth: How many scores each list stands for (the candidates asked of it).

    Returns:
        One hit per distinct chunk with the fused score, best first; ties go to the smaller
        chunk id.
    """
    if method not in NORMALISERS:
        raise ValueError(f"unknown normalisation {method!r}; use one of {sorted(NORMALISERS)}")
    normalise = NORMALISERS[method]
    floors = list(floors) if floors is not None else [None] * len(rankings)
    per_list: list[dict[str, float]] = []
    absent: list[float] = []
    chunks: dict[str, Hit] = {}
    for ranking, floor in zip(rankings, floors, strict=True):
        best: dict[str, float] = {}
        raw = [h.score for h in ranking]
        filler = [min(raw, default=0.0)] if floor is None else [floor] * max(1, depth - len(raw))
        values = normalise(np.array([*raw, *filler], dtype=np.float64))
        for hit, value in zip(ranking, values[: len(raw)], strict=True):
            chunks.setdefault(hit.chunk.id, hit)
            best[hit.chunk.id] = max(best.get(hit.chunk.id, -np.inf), float(value))
        per_list.append(best)
        absent.append(float(values[-1]))
    scores = {
        cid: sum(best.get(cid, low) for best, low in zip(per_list, absent, strict=True))
        for cid in chunks
    }
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))
    return [Hit(chunks[cid].chunk, scores[cid], "fused") for cid in order]


def keyword_floor(hits: Sequence[Hit], asked: int) -> float | None:
    """The floor ``score_fuse`` gives chunks absent from a BM25 list of ``asked`` hits.

    0 when the list is shorter than asked (BM25 returns every chunk sharing a query word, so
    the others score 0), else None (the list's lowest score).
    """
    return 0.0 if len(hits) < asked else None
