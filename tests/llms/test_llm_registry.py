from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import LLMSettings
from core.errors import ConfigurationError
from llms.base import Generator
from llms.hf_local import HFLocalGenerator
from llms.openai_api import OpenAIGenerator
from llms.registry import GENERATORS, create_generator


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigurationError, match="unknown generator backend 'llamacpp'; known: hf_local, openai"
    ):
        create_generator({"backend": "llamacpp"})


def test_openai_from_the_settings_dump() -> None:
    settings = LLMSettings(backend="openai", model="gpt-4o", api_key="sk-test", timeout_s=5)
    generator = create_generator(settings.model_dump(), Path("unused"))
    assert isinstance(generator, OpenAIGenerator)
    assert isinstance(generator, Generator)
    assert (generator.model_name, generator.context_window) == ("gpt-4o", 128_000)
    generator.close()


def test_settings_object_and_keyword_overrides() -> None:
    settings = LLMSettings(backend="openai", api_key="sk-test")
    generator = create_generator(settings, context_window=1234)
    assert generator.context_window == 1234
    generator.close()


def test_backend_settings_errors_surface_at_creation() -> None:
    with pytest.raises(ConfigurationError, match="needs an API key"):
        create_generator(LLMSettings(backend="openai").model_dump())


@pytest.mark.integration
def test_hf_local_from_the_default_settings(
    hf_generator: HFLocalGenerator, model_cache: Path
) -> None:
    generator = create_generator(LLMSettings().model_dump(), model_cache)
    try:
        assert isinstance(generator, HFLocalGenerator)
        assert not generator.converted  # the session's conversion is reused
        assert generator.model_name == hf_generator.model_name
    finally:
        generator.close()


def test_registry_imports_backends_lazily() -> None:
    code = (
        "import sys, llms.registry; "
        "print(sorted(m for m in ('torch', 'transformers', 'openai', 'fastapi', 'app') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
    assert set(GENERATORS) == {"hf_local", "openai"}
