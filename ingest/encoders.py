"""Encoders: one forward pass of an embedding model over a batch of texts, in torch or ONNX.

``SentenceTransformerEmbedder`` decides what goes in a batch, in which order and under which
lock; an ``Encoder`` only runs the model on it. The two numeric worlds differ in what a pass
needs: torch takes the texts (sentence-transformers tokenizes them) and must be kept to one
thread for a query; an ONNX session takes the tokenized batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy.typing as npt

if TYPE_CHECKING:
    from ingest.onnx_export import OnnxSession


class Encoder(Protocol):
    """Runs the model once over a batch; the caller serialises calls."""

    def encode(self, texts: list[str], *, query: bool = False) -> npt.NDArray[Any]:
        """Return one row per text (unit length); ``query`` marks a batch of queries."""


class TorchEncoder:
    """A sentence-transformers model's forward pass; queries run on one thread."""

    def __init__(self, model: Any, threads: int) -> None:
        """Wrap a loaded ``SentenceTransformer``.

        Args:
            model: The model.
            threads: Torch threads for document batches, restored after each query.
        """
        self.model = model
        self.threads = max(1, threads)

    def encode(self, texts: list[str], *, query: bool = False) -> npt.NDArray[Any]:
        """One forward pass; a query batch runs on one thread.

        A query batch is a few short texts: splitting its small matrix products across
        threads costs more in synchronisation than it saves, and on a busy machine each
        barrier waits for a descheduled thread (measured on 2 shared cores: 20-30 ms per query
        on one thread, 500-700 ms on two).
        """
        import torch

        if query:
            # Always set: ``torch.get_num_threads`` reads this thread's OpenMP setting, which a
            # FAISS search in the same thread leaves at 1 (FAISS and torch share libgomp), while
            # MKL's count is process-wide, so skipping the call when it reads 1 let MKL run the
            # query's matrix products on every core (measured: 1.8x the CPU per query).
            torch.set_num_threads(1)
        try:
            vectors: npt.NDArray[Any] = self.model.encode(
                texts,
                batch_size=len(texts),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        finally:
            if query:
                torch.set_num_threads(self.threads)
        return vectors


class OnnxEncoder:
    """An ONNX export's forward pass over texts tokenized by the model's tokenizer."""

    def __init__(self, session: OnnxSession, tokenize: Callable[[list[str]], Any]) -> None:
        """Wrap an open session and the tokenizer call that feeds it."""
        self.session = session
        self._tokenize = tokenize

    def encode(self, texts: list[str], *, query: bool = False) -> npt.NDArray[Any]:
        """One forward pass (sessions size their own thread pools)."""
        return self.session.run(self._tokenize(texts))
