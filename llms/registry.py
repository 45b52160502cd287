"""Backend name -> generator factory; each factory imports its library only when called."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from llms.base import Generator

Factory = Callable[[Mapping[str, Any], Path | None], Generator]


def _hf_local(options: Mapping[str, Any], cache_dir: Path | None) -> Generator:
    from llms.hf_local import HFLocalGenerator

    return HFLocalGenerator(
        options.get("model"),
        cache_dir=cache_dir,
        device=options.get("device", "cpu"),
        dtype=options.get("dtype", "auto"),
        quantization=options.get("quantization", "none"),
        context_window=options.get("context_window"),
    )


def _openai(options: Mapping[str, Any], cache_dir: Path | None) -> Generator:
    from llms.openai_api import OpenAIGenerator

    return OpenAIGenerator(
        options.get("model"),
        api_key=options.get("api_key"),
        base_url=options.get("base_url"),
        timeout_s=options.get("timeout_s", 60.0),
        max_retries=options.get("max_retries", 2),
        context_window=options.get("context_window"),
    )


GENERATORS: dict[str, Factory] = {
    "hf_local": _hf_local,
    "openai": _openai,
}
"""The known backends. A new one is a factory here, importing its library inside."""


def create_generator(
    settings: Mapping[str, Any] | Any = None,
    cache_dir: Path | str | None = None,
    **overrides: Any,
) -> Generator:
    """Build the generator a configuration names.

    Args:
        settings: The ``llm`` settings as a mapping (``settings.llm.model_dump()``) or any object
            with ``model_dump()`` or attributes; keys a backend does not use are ignored.
        cache_dir: Where local backends keep converted models (``data_dir / "models"``).
        **overrides: Settings given one by one; they win over ``settings``.

    Returns:
        A ready ``Generator``; a local model is loaded (and converted on first use) here.

    Raises:
        ConfigurationError: the backend is unknown or its settings are invalid.
    """
    options = {**_as_mapping(settings), **overrides}
    backend = options.get("backend", "hf_local")
    factory = GENERATORS.get(backend)
    if factory is None:
        known = ", ".join(sorted(GENERATORS))
        raise ConfigurationError(f"unknown generator backend {backend!r}; known: {known}")
    return factory(options, Path(cache_dir) if cache_dir is not None else None)


def _as_mapping(settings: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        return settings
    dump = getattr(settings, "model_dump", None)
    if callable(dump):
        result = dump()
        if isinstance(result, Mapping):
            return result
    return dict(vars(settings))
