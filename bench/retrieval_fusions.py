"""Ways to combine a dense and a BM25 ranking that need no tuned weight (for the benchmarks).

Each fusion takes the two candidate lists of a question (``Rankings``: dense by cosine, BM25
by its score, each best first) and returns the fused hit list. ``rrf_weighted`` is the
server's shipping fusion (RRF, k=60, dense 0.7 : BM25 1); the others are compared with it by
``bench/retrieval_variants.py``:

* ``rrf``, ``rrf_k10``, ``rrf_k20``: plain reciprocal rank fusion (equal weights), k 60/10/20.
* ``minmax``: CombSUM of min-max normalised scores (each list scaled to [0, 1]; absent: 0).
* ``zscore``: CombSUM of z-scores within each list (absent: the list's minimum).
* ``page_rrf``: document-level evidence. A chunk's RRF score plus the RRF scores of the other
  chunks of its page in the candidate lists: several strong chunks from one page lift each.
* ``page_rrf_max``: chunks ordered by their page's best chunk, then by their own score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.types import Hit
from retrieval.evaluation import result_key
from retrieval.fusion import keyword_floor, rrf_fuse, score_fuse

CANDIDATES = 50
"""Hits each retriever contributes (the server's default ``candidates``)."""


@dataclass(frozen=True)
class Rankings:
    """One question's candidates: dense (cosine) and BM25, each best first."""

    dense: list[Hit]
    keyword: list[Hit]


def page_evidence(fused: list[Hit], *, by_max: bool = False) -> list[Hit]:
    """Reorder fused hits by their page's evidence (see the module docstring)."""
    pages: dict[str, list[float]] = {}
    for hit in fused:
        pages.setdefault(result_key(hit.chunk.metadata), []).append(hit.score)
    if by_max:
        key = {p: max(s) for p, s in pages.items()}
        order = sorted(
            fused, key=lambda h: (-key[result_key(h.chunk.metadata)], -h.score, h.chunk.id)
        )
        return order
    total = {p: sum(s) for p, s in pages.items()}
    rescored = [Hit(h.chunk, h.score + total[result_key(h.chunk.metadata)], "fused") for h in fused]
    return sorted(rescored, key=lambda h: (-h.score, h.chunk.id))


def _scores(r: Rankings, method: str) -> list[Hit]:
    """The server's score fusion, with its floor for a short BM25 list."""
    floors = [None, keyword_floor(r.keyword, CANDIDATES)]
    return score_fuse([r.dense, r.keyword], method, floors, CANDIDATES)


FUSIONS: dict[str, Callable[[Rankings], list[Hit]]] = {
    "rrf_weighted": lambda r: rrf_fuse([r.dense, r.keyword], 60, (0.7, 1.0)),
    "rrf": lambda r: rrf_fuse([r.dense, r.keyword], 60),
    "rrf_k20": lambda r: rrf_fuse([r.dense, r.keyword], 20),
    "rrf_k10": lambda r: rrf_fuse([r.dense, r.keyword], 10),
    "minmax": lambda r: _scores(r, "minmax"),
    "zscore": lambda r: _scores(r, "zscore"),
    "page_rrf": lambda r: page_evidence(rrf_fuse([r.dense, r.keyword], 60)),
    "page_rrf_max": lambda r: page_evidence(rrf_fuse([r.dense, r.keyword], 60), by_max=True),
    "dense_page": lambda r: page_evidence(rrf_fuse([r.dense], 60)),
}
