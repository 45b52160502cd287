"""Deterministic fakes shared by the test suites (no model downloads, no randomness)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ingest.base import WhitespaceTokenizer

_WORD = re.compile(r"\w+")


class HashEmbedder:
    """A bag-of-words embedder: each lower-cased word adds 1 to a hashed coordinate.

    Texts sharing words get similar vectors, so retrieval tests behave sensibly. Vectors are
    L2-normalised float32; a text without words maps to the first unit vector. Tokens are
    whitespace-separated words plus 2 special tokens, and ``chunk_tokenizer`` counts the same
    way, so chunking with this embedder is exact.
    """

    def __init__(self, dimension: int = 64) -> None:
        self.dimension = dimension
        self.model_name = f"hash-{dimension}"
        self.max_seq_length = 256
        self.chunk_tokenizer = WhitespaceTokenizer(special_tokens=2)
        self.cache_namespace = self.model_name
        self.backend_info: dict[str, str] = {}
        self.embed_calls = 0
        self.embedded_texts = 0

    def _vector(self, text: str) -> npt.NDArray[np.float32]:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            vector[int.from_bytes(digest, "little") % self.dimension] += 1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.embed_calls += 1
        self.embedded_texts += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._vector(text)
        return out

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self._vector(text)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


class EchoGenerator:
    """A deterministic stand-in for a chat model: quotes the first source it was given.

    The answer is ``"<first sentence of source 1> [1]"``, so tests can check that an answer
    is grounded in what the prompt carried, and ``stream`` yields the same text word by word.
    """

    supports_streaming = True

    def __init__(self, context_window: int = 4096) -> None:
        from llms.base import TokenizerSpec
        from prompts.tokenizers import EstimateTokenizer

        self.model_name = "echo"
        self.context_window = context_window
        self.tokenizer_spec = TokenizerSpec("estimate", "echo")
        self.prompt_tokenizer = EstimateTokenizer("echo")
        self.calls: list[list[dict[str, str]]] = []

    def _answer(self, messages: Sequence[Any]) -> str:
        import re

        prompt = messages[-1]["content"]
        found = re.search(r"<source id=\"1\"[^>]*>\s*(.*?)</source>", prompt, re.S)
        # The short_answer template shows sources as plain lines: "[1] text".
        found = found or re.search(r"^\[1\] (.*)$", prompt, re.M)
        if not found:
            return "I could not find this in the documents."
        first = re.split(r"(?<=[.!?])\s", found.group(1).strip(), maxsplit=1)[0]
        return f"{first} [1]"

    def generate(self, messages: Sequence[Any], params: Any) -> Any:
        from llms.base import Completion

        self.calls.append([dict(m) for m in messages])
        words = self._answer(messages).split(" ")[: params.max_new_tokens]
        text = " ".join(words)
        return Completion(
            text=text,
            completion_tokens=len(words),
            prompt_tokens=self.prompt_tokenizer.count_messages(messages),
            finish_reason="stop" if len(words) < params.max_new_tokens else "length",
        )

    def stream(self, messages: Sequence[Any], params: Any) -> Iterator[str]:
        text = self.generate(messages, params).text
        for i, word in enumerate(text.split(" ")):
            yield word if i == 0 else " " + word

    def close(self) -> None:
        return None
