"""The ONNX export that queries move to, made once in a child process (see ``embedders``).

Exporting takes seconds to minutes and loads a second copy of the model, so it runs in its
own process, with one thread, while the server answers queries on the documents' backend;
later starts find the export cached and open it at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXPORT_TIMEOUT_S = 900.0


def query_export_path(model_dir: Path, cache_dir: Path, name: str, precision: str) -> Path:
    """Return the cached ONNX export of a model for queries, making it first if needed.

    Args:
        model_dir: The model's folder.
        cache_dir: Where exports are cached (``<data_dir>/cache``).
        name: The model's name (part of the file name).
        precision: ``float32`` or ``int8``.

    Raises:
        RuntimeError: the export process failed (its last line of stderr says why).
        subprocess.TimeoutExpired: it ran over ``EXPORT_TIMEOUT_S``.
    """
    from ingest import onnx_export

    path = onnx_export.cached_path(model_dir, cache_dir, name, precision)
    if path.is_file():
        return path
    command = [
        sys.executable, "-m", "ingest.onnx_export", "--model-dir", str(model_dir),
        "--cache-dir", str(cache_dir), "--name", name, "--precision", precision,
    ]  # fmt: skip
    root = str(Path(onnx_export.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=EXPORT_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the export process exited with {done.returncode}: {tail}")
    return Path(done.stdout.strip().splitlines()[-1])
