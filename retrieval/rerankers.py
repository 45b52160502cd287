"""Rerankers: score (query, passage) pairs jointly, to reorder retrieved candidates.

A cross-encoder reads the query and a passage together, so it judges relevance better than
comparing two independent embeddings, at the cost of one forward pass per candidate. It is
off by default (``RAG_RETRIEVAL__RERANKER`` empty); set it to a local cross-encoder folder
(for example a saved ``cross-encoder/ms-marco-MiniLM-L-6-v2``). Models load offline only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.errors import ConfigurationError
from core.types import Hit

__all__ = ["CrossEncoderReranker", "Reranker", "create_reranker", "rerank_hits"]


@runtime_checkable
class Reranker(Protocol):
    """Scores how well each passage answers a query.

    ``score`` returns one float per passage, higher is more relevant; only the order matters
    across passages of one query (scores of different queries are not comparable). Passages
    are scored independently: the result does not depend on the other passages in the call.
    """

    model_name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Return one relevance score per passage, higher is better."""


class CrossEncoderReranker:
    """A ``Reranker`` over a sentence-transformers ``CrossEncoder`` loaded from a folder.

    Scores are the model's output after its default activation (a sigmoid for the usual
    one-label relevance models, so in [0, 1]). Calls from several threads are serialised.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int | None = 512,
    ) -> None:
        """Load the cross-encoder.

        Args:
            model: A local model folder (or a hub id already in the local cache).
            device: Torch device.
            batch_size: Pairs per forward pass.
            max_length: Most tokens of a (query, passage) pair; longer pairs are truncated.

        Raises:
            ConfigurationError: the model cannot be loaded offline, or it is not a one-label
                (relevance) cross-encoder.
        """
        from sentence_transformers import CrossEncoder

        try:
            self._model = CrossEncoder(
                str(model), device=device, local_files_only=True, max_length=max_length
            )
        except Exception as exc:  # OSError, ValueError, HF hub errors...
            raise ConfigurationError(
                f"reranker model {str(model)!r} cannot be loaded offline ({exc}); set "
                "RAG_RETRIEVAL__RERANKER to a local cross-encoder folder, or leave it empty"
            ) from exc
        labels = int(getattr(self._model, "num_labels", 1))
        if labels != 1:
            raise ConfigurationError(
                f"reranker model {str(model)!r} has {labels} output labels; a relevance "
                "cross-encoder has one"
            )
        self.model_name = str(model)
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Score every ``(query, passage)`` pair; higher is more relevant."""
        if not passages:
            return []
        pairs = [(query, passage) for passage in passages]
        with self._lock:
            scores = self._model.predict(
                pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
            )
        return [float(s) for s in scores.reshape(-1)]


def create_reranker(model: str | Path | None, device: str = "cpu") -> Reranker | None:
    """Build the configured reranker, or None when ``model`` is empty (reranking off).

    Raises:
        ConfigurationError: the model cannot be loaded.
    """
    if not model or not str(model).strip():
        return None
    return CrossEncoderReranker(model, device=device)


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
    return [Hit(hits[i].chunk, float(scores[i]), "rerank") for i in order]
