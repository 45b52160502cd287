"""Embedding caches for the retrieval benchmark: reuse vectors of texts embedded before.

``--embed-cache DIR`` of ``bench/bench_retrieval.py``: our embedder's vectors go to
``DIR/ours.npz``, LangChain's to ``DIR/langchain.npz``, keyed by the SHA-1 of the text, so a
rerun (another fusion weight, another split) embeds only chunks it has not seen. Ingest times
of cached runs are not real; ``Timings`` keeps those of runs that embedded everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class VectorCache:
    """Vectors by text hash, kept in one ``.npz`` file; counts hits and misses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0
        if path.exists():
            data = np.load(path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def get(self, texts: Sequence[str], embed: Any) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            vectors = np.asarray(embed([texts[i] for i in missing]), dtype=np.float32)
            for i, vector in zip(missing, vectors, strict=True):
                self.cache[keys[i]] = vector
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return np.stack([self.cache[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.cache), dtype="U40")
        vectors = np.stack(list(self.cache.values())) if self.cache else np.zeros((0, 1))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, self.path)


class Timings:
    """Ingest times of runs that really embedded, so cached reruns can report them."""

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / "timings.json" if folder else None
        self.data: dict[str, Any] = {}
        if self.path and self.path.exists():
            self.data = json.loads(self.path.read_text())

    def settle(self, key: str, measured: float, reused: int, total: int) -> tuple[float, str]:
        """Return the ingest seconds to report and a note.

        ``reused`` of ``total`` vectors came from the cache: with none, the time is real and
        recorded; otherwise a recorded real time is reported if there is one.
        """
        if not reused:
            self.data[key] = {"seconds": measured, "date": time.strftime("%Y-%m-%d %H:%M")}
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(self.data, indent=1))
            return measured, ""
        if key in self.data:
            earlier = self.data[key]
            return float(earlier["seconds"]), f"time of the uncached run {earlier['date']}"
        return measured, f"{reused} of {total} chunk vectors from the cache: time understated"


class CachedEmbedder:
    """Wraps an embedder, reusing vectors of texts seen before (stored in ``folder``)."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self.chunk_tokenizer = inner.chunk_tokenizer
        self.cache_namespace = inner.cache_namespace
        self.backend_info = inner.backend_info
        self.vectors = VectorCache(folder / "ours.npz")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors.get(texts, self.inner.embed)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))


def cached_langchain_embeddings(inner: Any, folder: Path) -> Any:
    """A LangChain ``Embeddings`` reusing vectors of texts seen before."""
    from langchain_core.embeddings import Embeddings

    vectors = VectorCache(folder / "langchain.npz")

    class Cached(Embeddings):
        cache = vectors

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return vectors.get(texts, inner.embed_documents).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return inner.embed_query(text)  # type: ignore[no-any-return]

    return Cached()
