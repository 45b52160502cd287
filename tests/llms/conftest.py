"""The real default model, converted and loaded once per session, and the loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llms.hf_local import HFLocalGenerator
from tests.llms.openai_compat_server import LoopbackServer, create_compat_app


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def hf_generator(model_cache: Path) -> Iterator[HFLocalGenerator]:
    """The first construction in the session: converts the bundled GGUF file."""
    generator = HFLocalGenerator(cache_dir=model_cache)
    yield generator
    generator.close()


@pytest.fixture(scope="session")
def compat_server(hf_generator: HFLocalGenerator) -> Iterator[LoopbackServer]:
    # /slow answers after 12 s: well past the 1 s client timeout of the test, however busy.
    with LoopbackServer(create_compat_app(hf_generator, slow_s=12.0)) as server:
        yield server
