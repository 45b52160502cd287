"""The ``openai`` embedding backend: embeds through any OpenAI-compatible embeddings server.

``RAG_EMBEDDING__BACKEND=openai`` sends documents' chunks and search queries to
``POST {base_url}/embeddings`` (OpenAI, TEI, vLLM, Infinity, Ollama, or another ragserver's
``/v1/embeddings``) with the ``openai`` client: ``batch_size`` texts a request, up to
``concurrent_requests`` requests at once, with its retries and timeout.

What the remote model sees is never counted by the remote: chunking needs every token's span
while it cuts a text, so token counts come from a local tokenizer (``tokenizer``: the bundled
all-MiniLM-L6-v2's WordPiece by default, or any local Hugging Face tokenizer). That is exact
when the remote serves all-MiniLM-L6-v2 (or a model sharing its tokenizer) and an
approximation otherwise: ``max_input_tokens`` (the remote model's limit) bounds chunk sizes and
cuts long queries in *local* tokens, so a chunk size well below the limit leaves room for the
difference. A chunk the remote still finds too long fails its file with the server's message.

At start-up one probe request learns the vectors' dimension and the model's name as the server
reports it; collections record both, like any embedder's, so a collection made with one model
is never searched with another.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import ConfigurationError, ProviderError, ProviderTimeout
from ingest.chunking import HFChunkTokenizer

__all__ = ["OpenAIEmbedder", "load_tokenizer"]

logger = logging.getLogger(__name__)
_PROBE = "ragserver dimension probe"


def load_tokenizer(location: str) -> Any:
    """Load a Hugging Face fast tokenizer offline, from a folder or a cached hub id.

    Raises:
        ConfigurationError: it cannot be loaded without a download.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(location, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, HF hub errors...
        raise ConfigurationError(
            f"the embedding tokenizer {location!r} cannot be loaded offline ({exc}); set "
            "RAG_EMBEDDING__OPENAI__TOKENIZER to all-MiniLM-L6-v2 or a local tokenizer folder"
        ) from exc


def _unit_rows(vectors: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


def _provider_error(exc: Exception) -> ProviderError:
    """The domain error for a failed embeddings request (timeout, HTTP status, network)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(f"the embeddings server timed out: {exc}")
    status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
    reason = f"answered {status}" if status is not None else "cannot be reached"
    return ProviderError(f"the embeddings server {reason}: {exc}", {"status": status})


class OpenAIEmbedder:
    """An ``Embedder`` whose vectors come from an OpenAI-compatible embeddings server.

    Attributes:
        model_name: The model's name as the server reports it (the configured one if it
            reports none); collections record it.
        dimension: Vector dimension, learnt from the probe request.
        max_seq_length: ``max_input_tokens``, in the local tokenizer's tokens.
        backend: ``openai``; ``query_backend`` too (shown by ``/readyz``).
        cache_namespace: What the embedding cache keys these vectors by: server and model.
        chunk_tokenizer: The local tokenizer, adapted for ``ingest.chunking``.
    """

    backend = "openai"
    query_backend = "openai"

    @property
    def backend_info(self) -> dict[str, str]:
        """``openai`` for documents and queries alike (shown by ``/readyz``)."""
        return {"backend": self.backend, "query_backend": self.query_backend}

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 64,
        concurrent_requests: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        tokenizer: str,
        max_input_tokens: int = 512,
    ) -> None:
        """Connect, load the local tokenizer and probe the server for the dimension.

        ``tokenizer`` is the local tokenizer's folder or cached hub id (the factory in
        ``ingest.embedders`` turns the bundled model's name into its folder).

        Raises:
            ConfigurationError: the tokenizer cannot be loaded, or the probe request fails.
        """
        from openai import OpenAI

        self._model = model
        self.base_url = base_url or "https://api.openai.com/v1"
        self.batch_size = batch_size
        self.concurrent_requests = concurrent_requests
        self.max_seq_length = max_input_tokens
        self.tokenizer = load_tokenizer(tokenizer)
        self.chunk_tokenizer = HFChunkTokenizer(self.tokenizer)
        # The openai client wants a key even where the server takes none (a local TEI).
        self._client = OpenAI(
            base_url=self.base_url,
            api_key=api_key or "unused",
            timeout=timeout_s,
            max_retries=max_retries,
        )
        try:
            vectors, reported = self._request([_PROBE], None)
        except ProviderError as exc:
            raise ConfigurationError(
                f"the embeddings server at {self.base_url} did not embed a probe text with "
                f"model {model!r}: {exc.message}; check RAG_EMBEDDING__OPENAI__BASE_URL, "
                "RAG_EMBEDDING__MODEL and RAG_EMBEDDING__OPENAI__API_KEY"
            ) from exc
        self.dimension = int(vectors.shape[1])
        self.model_name = reported or model
        self.cache_namespace = f"openai|{self.base_url}|{self.model_name}"
        logger.info(
            "embedder %s (%d-d) at %s; tokens counted with %s",
            self.model_name,
            self.dimension,
            self.base_url,
            tokenizer,
        )

    def _request(
        self, texts: Sequence[str], dimension: int | None
    ) -> tuple[npt.NDArray[np.float32], str]:
        """One embeddings request; returns the unit rows in input order and the model's name.

        Args:
            texts: What to embed.
            dimension: The dimension the vectors must have; None takes what comes (the probe).
        """
        import openai

        try:
            response = self._client.embeddings.create(
                model=self._model, input=list(texts), encoding_format="float"
            )
        except openai.APIError as exc:
            raise _provider_error(exc) from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise ProviderError(
                f"the embeddings server returned {len(rows)} vectors for {len(texts)} texts"
            )
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if vectors.ndim != 2 or (dimension is not None and vectors.shape[1] != dimension):
            raise ProviderError(
                f"the embeddings server returned vectors of shape {vectors.shape}; the "
                f"model had {dimension} dimensions at start-up"
            )
        return _unit_rows(vectors), str(response.model or "")

    def _vectors(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._request(texts, self.dimension)[0]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed document chunks, ``batch_size`` a request, ``concurrent_requests`` at once."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1:
            return self._vectors(batches[0])
        with ThreadPoolExecutor(min(self.concurrent_requests, len(batches))) as pool:
            parts = list(pool.map(self._vectors, batches))
        return np.concatenate(parts)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query, cut to ``max_input_tokens`` local tokens first."""
        spans = self.chunk_tokenizer.token_spans([text])[0]
        room = self.max_seq_length - self.chunk_tokenizer.special_tokens
        if len(spans) > room:
            text = text[: spans[room - 1][1]]
        vector: npt.NDArray[np.float32] = self._vectors([text])[0]
        return vector

    def count_tokens(self, text: str) -> int:
        """Count ``text``'s tokens with the local tokenizer, special tokens included."""
        spans = self.chunk_tokenizer.token_spans([text])[0]
        return len(spans) + self.chunk_tokenizer.special_tokens
