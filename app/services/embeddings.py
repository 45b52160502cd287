"""Embeddings for callers (``POST /v1/embeddings``): the server's own embedder, checked inputs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import InvalidRequest, LimitExceeded
from ingest.base import Embedder

MAX_INPUTS = 2048
"""Texts one request may carry: OpenAI's own limit, so clients batch for it already."""


@dataclass(frozen=True)
class Embeddings:
    """Unit-length vectors of the inputs, in order, and the tokens the model read."""

    vectors: npt.NDArray[np.float32]
    tokens: int
    model: str

    def encoded(self, encoding_format: str) -> list[list[float]] | list[str]:
        """The vectors as lists of floats, or as base64 of little-endian float32 bytes."""
        if encoding_format == "base64":
            rows = self.vectors.astype("<f4")
            return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
        return [row.tolist() for row in self.vectors]


def serves_model(embedder: Embedder, model: str) -> bool:
    """Whether ``model`` names the embedder's model (in full, or its last path part)."""
    name = embedder.model_name
    return model == name or name.endswith("/" + model)


def texts_of(raw: str | Sequence[Any]) -> list[str]:
    """Return the input as a list of texts, refusing token ids and empty texts.

    Raises:
        InvalidRequest: token-id arrays, something other than strings, or an empty text.
        LimitExceeded: more than ``MAX_INPUTS`` texts.
    """
    texts = [raw] if isinstance(raw, str) else list(raw)
    if not texts:
        raise InvalidRequest("input is an empty list; send a text or a list of texts")
    if len(texts) > MAX_INPUTS:
        raise LimitExceeded(
            f"{len(texts)} inputs in one request; at most {MAX_INPUTS} are accepted",
            {"inputs": len(texts), "max_inputs": MAX_INPUTS},
        )
    for i, text in enumerate(texts):
        if isinstance(text, int | list):
            raise InvalidRequest(
                "input holds token ids; this server accepts text only: send the strings "
                "(LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)",
                {"index": i},
            )
        if not isinstance(text, str):
            raise InvalidRequest(f"input[{i}] is a {type(text).__name__}; send strings")
        if not text.strip():
            raise InvalidRequest(f"input[{i}] is empty; every input must hold some text")
    return texts


def embed_inputs(
    embedder: Embedder,
    raw: str | Sequence[Any],
    model: str,
    dimensions: int | None = None,
    truncate: bool = False,
) -> Embeddings:
    """Embed a request's inputs with the server's embedder, as documents are embedded.

    Args:
        embedder: The server's embedder.
        raw: A text or a list of texts.
        model: The model the caller asks for; it must be the embedder's.
        dimensions: The dimension the caller asks for; None or the model's own.
        truncate: Cut texts longer than the model reads instead of refusing them.

    Raises:
        InvalidRequest: another model or dimension, token ids, empty texts, or (without
            ``truncate``) a text longer than the model reads.
        LimitExceeded: too many inputs.
    """
    if not serves_model(embedder, model):
        raise InvalidRequest(
            f"this server embeds with '{embedder.model_name}'; send model '{embedder.model_name}'",
            {"model": embedder.model_name},
        )
    if dimensions is not None and dimensions != embedder.dimension:
        raise InvalidRequest(
            f"'{embedder.model_name}' makes {embedder.dimension}-dimensional vectors and cannot "
            f"shorten them; leave dimensions out",
            {"dimension": embedder.dimension},
        )
    texts = texts_of(raw)
    limit = embedder.max_seq_length
    counts = [embedder.count_tokens(text) for text in texts]
    too_long = [i for i, n in enumerate(counts) if n > limit]
    if too_long and not truncate:
        first = too_long[0]
        raise InvalidRequest(
            f"input[{first}] is {counts[first]} tokens; '{embedder.model_name}' reads at most "
            f'{limit}: split it, or send "truncate": true to embed its first {limit} tokens',
            {"index": first, "tokens": counts[first], "max_tokens": limit},
        )
    vectors = embedder.embed(texts)
    return Embeddings(vectors, sum(min(n, limit) for n in counts), embedder.model_name)
