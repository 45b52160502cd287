"""The ONNX backends: export a sentence-transformers model to ONNX once, optionally quantise, run.

sentence-transformers' own ONNX backend needs ``optimum``, which does not install beside
sentence-transformers 6, so the model is exported directly: ``torch.onnx.export`` (the
TorchScript exporter, no ``onnxscript`` needed) of the transformer plus mean pooling and L2
normalisation. That is the ``float32`` file: the same arithmetic as torch (cosine 1.0 to its
vectors), and onnxruntime runs one short query about 2x faster than torch does (small matrix
products, less per-op overhead). The ``int8`` file is the float32 one after
``onnxruntime.quantization.quantize_dynamic`` with per-channel int8 weights on the MatMuls only
(quantising the embedding table and using per-tensor scales both pulled the cosine to float32
below 0.9 on real text; this keeps it at about 0.99).

Each file is made once per model and cached as ``<cache_dir>/onnx/<name>-<key>.<precision>.onnx``;
the key hashes the model folder's files (name, size, mtime), the torch and onnxruntime versions
and the recipe, so a changed model or library makes a new file. It is built in a temporary
folder beside it and moved into place with ``os.replace`` under an ``flock``, so concurrent
processes build it once and nobody ever reads half a file.

``python -m ingest.onnx_export --model-dir DIR --cache-dir DIR --name NAME --precision float32``
makes (or finds) the file in a process of its own and prints its path: the embedder runs the
float32 export for queries that way, in the background, so tracing the model never holds the
server's interpreter lock.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import ConfigurationError

__all__ = ["PRECISIONS", "RECIPE", "OnnxSession", "cached_path", "export_onnx", "onnx_cache_key"]

logger = logging.getLogger(__name__)

RECIPE = "mean-pool-l2/opset17/int8-matmul-per-channel/v2"
PRECISIONS = ("float32", "int8")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_cache_key(model_dir: Path) -> str:
    """Hash what the exported file depends on: the model's files, the libraries, the recipe."""
    import onnxruntime
    import torch

    digest = hashlib.sha256(f"{RECIPE}|{torch.__version__}|{onnxruntime.__version__}".encode())
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            rel = path.relative_to(model_dir).as_posix()
            digest.update(f"|{rel}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pooled_module(st_model: Any) -> Any:
    """Wrap the model's transformer with mean pooling and L2 normalisation, for export."""
    import torch

    modules = list(st_model)
    pooling = modules[1] if len(modules) > 1 else None
    # sentence-transformers 6 names it pooling_mode="mean"; older ones a boolean flag.
    mode = getattr(pooling, "pooling_mode", None)
    mean = mode == "mean" or getattr(pooling, "pooling_mode_mean_tokens", None) is True
    if pooling is None or not mean:
        raise ConfigurationError(
            "the onnx-int8 embedding backend supports mean-pooled sentence-transformers models "
            "only; use RAG_EMBEDDING__BACKEND=float32 or bfloat16 for this model"
        )
    transformer = modules[0].auto_model

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return Pooled().eval()


def _export(st_model: Any, target: Path) -> None:
    """Write the float32 ONNX graph of ``st_model`` (pooled, normalised) to ``target``."""
    import torch

    module = _pooled_module(st_model)
    sample = st_model.tokenizer(
        ["an example sentence", "another, longer example sentence to export"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(
        sample[name] if name in sample else torch.zeros_like(sample["input_ids"])
        for name in _INPUTS
    )
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings, expected here
        torch.onnx.export(
            module,
            args,
            str(target),
            input_names=list(_INPUTS),
            output_names=["embedding"],
            dynamic_axes={**axes, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _quantise(source: Path, target: Path) -> None:
    """Write the int8 version of the float32 graph ``source`` to ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    quiet = _DropPreprocessAdvice()
    root.addFilter(quiet)  # onnxruntime advises pre-processing on the root logger; done here
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
        )
    finally:
        root.removeFilter(quiet)


class _DropPreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def cached_path(model_dir: Path, cache_dir: Path, name: str, precision: str) -> Path:
    """Where the ``precision`` export of the model in ``model_dir`` is (or will be) cached."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r}; use one of {PRECISIONS}")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[-60:] or "model"
    return cache_dir / "onnx" / f"{slug}-{onnx_cache_key(model_dir)}.{precision}.onnx"


def export_onnx(
    st_model: Any, model_dir: Path, cache_dir: Path, name: str, precision: str = "int8"
) -> Path:
    """Return the cached ONNX file of ``st_model`` in ``precision``, exporting it first if needed.

    The int8 file is quantised from the float32 one, which is kept (and reused) too.

    Args:
        st_model: The float32 ``SentenceTransformer`` (on the CPU).
        model_dir: Its folder, whose files key the cache.
        cache_dir: Where exports are kept (``<data_dir>/cache``); ``onnx/`` is made under it.
        name: The model's name, for the file name.
        precision: ``float32`` or ``int8``.

    Raises:
        ConfigurationError: the model is not mean-pooled, or the export failed.
    """
    final = cached_path(model_dir, cache_dir, name, precision)
    if final.is_file():
        return final
    folder = final.parent
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(final.with_name(final.name.removesuffix(f".{precision}.onnx") + ".lock")):
        if final.is_file():  # another process made it while this one waited
            return final
        _drop_stale_temps(folder)
        float_file = final.with_name(final.name.replace(f".{precision}.onnx", ".float32.onnx"))
        logger.info("exporting %s to %s ONNX (once) at %s", name, precision, final)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
            try:
                if not float_file.is_file():
                    _build(lambda made: _export(st_model, made), Path(tmp), float_file)
                if precision == "int8":
                    _build(lambda made: _quantise(float_file, made), Path(tmp), final)
            except ConfigurationError:
                raise
            except Exception as exc:  # torch and onnxruntime raise many kinds
                raise ConfigurationError(
                    f"exporting {name} to {precision} ONNX failed ({exc}); use "
                    "RAG_EMBEDDING__BACKEND=float32 or bfloat16"
                ) from exc
    return final


def _drop_stale_temps(folder: Path, older_than_s: float = 3600.0) -> None:
    """Remove temporary export folders an interrupted export left behind (over an hour old)."""
    import shutil
    import time

    for tmp in folder.glob(".export-*"):
        try:
            if time.time() - tmp.stat().st_mtime > older_than_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue


def _build(write: Any, tmp: Path, final: Path) -> None:
    """Write a file with ``write(path)`` in ``tmp``, fsync it, move it to ``final`` atomically."""
    made = tmp / final.name
    write(made)
    with made.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(made, final)


class OnnxSession:
    """An onnxruntime session over an exported model; returns unit-length float32 rows."""

    def __init__(self, path: Path, threads: int, *, spinning: bool = True) -> None:
        """Open ``path`` on the CPU with ``threads`` intra-op threads.

        Args:
            path: The exported model.
            threads: Intra-op threads (the calling thread is one of them).
            spinning: Let idle pool threads spin-wait for the next parallel section (onnxruntime's
                default). Off for the query session: a spinning thread holds a core that a
                concurrent query, or a request's other work, needs (measured on 2 cores: a
                2-thread session served 8 concurrent callers at 67 queries/s spinning, 129 not
                spinning, and a 1-thread session 130).
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.threads = options.intra_op_num_threads
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]

    def run(self, encoded: Mapping[str, Any]) -> npt.NDArray[np.float32]:
        """Embed one tokenised batch (numpy arrays keyed by input name)."""
        feed = {}
        for name in self._inputs:
            value = encoded.get(name)
            if value is None:
                value = np.zeros_like(encoded["input_ids"])
            feed[name] = np.asarray(value, dtype=np.int64)
        output = self._session.run(None, feed)[0]
        return np.asarray(output, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    """Export (or find) a model's ONNX file in this process; print its path."""
    parser = argparse.ArgumentParser(prog="python -m ingest.onnx_export", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    args = parser.parse_args(argv)
    os.nice(10)  # a background job: the server's requests come first
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(args.model_dir), device="cpu", local_files_only=True)
        path = export_onnx(model, args.model_dir, args.cache_dir, args.name, args.precision)
    except Exception as exc:  # reported to the parent through stderr and the exit status
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
