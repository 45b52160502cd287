"""Which numeric backend embeds fastest on this machine without costing retrieval quality.

Backends of the sentence-transformers embedder:

* ``float32``: the reference.
* ``bfloat16``: the same model with bfloat16 weights and activations. On CPUs with native
  bfloat16 matrix units (Intel AMX ``amx_bf16``, or AVX-512 ``avx512_bf16``) oneDNN runs it
  about 1.7x faster than float32, with a cosine of at least 0.998 to the float32 vectors and
  the same dev-set retrieval. Without those units, bfloat16 is emulated and slower than float32.
* ``onnx-float32``: a one-time ONNX export of the same model (``ingest.onnx_export``), run by
  onnxruntime: the same vectors as ``float32`` (cosine 1.0). On the AVX2 machine measured it
  embedded document batches as fast as torch (1.01x), but one short query 1.7x to 2.6x as fast,
  which is why ``auto`` uses it for queries (below), not for documents.
* ``onnx-int8``: a one-time ONNX export, dynamically quantised to int8 (per-channel weights of
  the MatMuls), run by onnxruntime (``ingest.onnx_export``). Cosine about 0.99 to float32.

``auto`` resolves once, at start-up, from the CPU's capabilities: ``bfloat16`` where the CPU has
native bfloat16 units and torch's oneDNN can use them, else ``float32``. It never picks
``onnx-int8`` by itself: on the machines measured it was slower than bfloat16 where bfloat16 is
native, and its vectors drift further from float32 (set it explicitly where it measures
faster). On an AVX2-only AMD EPYC it embedded documents 1.5x and a single query 4.2x faster
than float32, but hybrid dev-set retrieval fell from 0.925 / 0.975 / 0.944 to 0.875 / 0.950 /
0.900 (hit@1 / hit@5 / MRR@10), outside the one-point bound ``auto`` keeps, so float32 stays
the choice there too. A device other than ``cpu`` (``cuda``, ``mps``) resolves to ``float32``.

Queries have a backend of their own (``resolve_query_backend``): ``same`` as the documents, or
``onnx-float32``. ``auto`` is ``onnx-float32`` where documents are embedded by torch in float32
on the CPU (identical vectors, and a single query, the case a search waits on, runs 1.7x to
2.6x faster: 14-18 ms instead of 30-37 ms on one AVX2 thread, ``bench/bench_query_path.py``;
8 concurrent queries 2.3x to 2.5x; 12.8 ms on the query session's two non-spinning threads,
``ingest.embedders.query_session``), else ``same``:
bfloat16 and int8 vectors differ slightly from float32 ones, so their queries stay with them.

Remote backends (``REMOTE_BACKENDS``) replace the sentence-transformers embedder altogether:
``openai`` embeds documents and queries through an OpenAI-compatible embeddings server
(``ingest.openai_embedder``); ``ingest.embedders.create_embedder`` builds it by this name.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

__all__ = [
    "BACKENDS",
    "BF16_CPU_FLAGS",
    "QUERY_BACKENDS",
    "REMOTE_BACKENDS",
    "cpu_flags",
    "native_bf16",
    "resolve_backend",
    "resolve_query_backend",
]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "float32", "bfloat16", "onnx-float32", "onnx-int8")
QUERY_BACKENDS = ("auto", "same", "onnx-float32")
REMOTE_BACKENDS = ("openai",)
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
_CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_flags(cpuinfo: Path = _CPUINFO) -> frozenset[str]:
    """Return the CPU feature flags of ``/proc/cpuinfo`` (empty where it does not exist)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether bfloat16 matrix products run natively on this CPU through torch.

    True when the CPU reports ``amx_bf16`` or ``avx512_bf16`` and torch's oneDNN (mkldnn)
    says bfloat16 is supported.
    """
    flags = cpu_flags() if flags is None else flags
    if not flags & BF16_CPU_FLAGS:
        return False
    import torch

    available: Any = torch.backends.mkldnn.is_available
    supported: Any = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(available() and (supported is None or supported()))
    except RuntimeError:
        return False


def resolve_backend(backend: str, device: str = "cpu", flags: frozenset[str] | None = None) -> str:
    """Turn a configured backend into the one to run (``auto`` decided here).

    Args:
        backend: ``auto``, ``float32``, ``bfloat16``, ``onnx-float32`` or ``onnx-int8``.
        device: The torch device; anything but ``cpu`` makes ``auto`` mean ``float32``.
        flags: CPU flags to decide on (``cpu_flags()`` by default; tests pass their own).

    Returns:
        ``float32``, ``bfloat16``, ``onnx-float32`` or ``onnx-int8``.

    Raises:
        ValueError: unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if device != "cpu":
        return "float32"
    return "bfloat16" if native_bf16(flags) else "float32"


def resolve_query_backend(query_backend: str, backend: str, device: str = "cpu") -> str:
    """Turn a configured query backend into the one to run, given the documents' (resolved).

    Args:
        query_backend: ``auto``, ``same`` or ``onnx-float32``.
        backend: The documents' backend, already resolved.
        device: The torch device; ONNX runs on the CPU only.

    Returns:
        ``same`` (queries run on the documents' backend) or ``onnx-float32``.

    Raises:
        ValueError: unknown query backend, or ``onnx-float32`` for documents whose vectors are
            not float32 ones (bfloat16, int8) or that are not embedded on the CPU.
    """
    if query_backend not in QUERY_BACKENDS:
        raise ValueError(
            f"unknown query embedding backend {query_backend!r}; use one of "
            f"{', '.join(QUERY_BACKENDS)}"
        )
    if query_backend == "auto":
        return "onnx-float32" if backend == "float32" and device == "cpu" else "same"
    if query_backend == "onnx-float32":
        if backend == "onnx-float32":
            return "same"
        if backend != "float32" or device != "cpu":
            raise ValueError(
                f"query backend onnx-float32 needs documents embedded in float32 on the CPU "
                f"(backend float32, device cpu); got backend {backend!r} on {device!r}: use "
                "query backend same or auto"
            )
    return query_backend
