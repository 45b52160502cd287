"""The bundled model loads on the first generative request, not at start-up, under auto."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.answers import GeneratorHolder
from app.services.container import Components, load_generator_at_startup
from app.settings import Settings
from llms.base import Generator
from llms.gguf import DEFAULT_CONTEXT_WINDOW, DEFAULT_MODEL_NAME
from tests.fakes import EchoGenerator, HashEmbedder


class CountingFactory:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Generator:
        self.calls += 1
        return EchoGenerator(context_window=1024)


def test_a_bundled_holder_knows_name_and_window_without_loading() -> None:
    factory = CountingFactory()
    holder = GeneratorHolder(factory, "hf_local", bundled=True)
    assert holder.model_name() == DEFAULT_MODEL_NAME
    assert holder.context_window() == DEFAULT_CONTEXT_WINDOW
    assert (factory.calls, holder.loaded) == (0, False)
    holder.get()
    holder.get()
    assert (factory.calls, holder.loaded) == (1, True)
    assert (holder.model_name(), holder.context_window()) == ("echo", 1024)  # the loaded one's


def test_another_model_is_loaded_to_learn_its_name() -> None:
    factory = CountingFactory()
    holder = GeneratorHolder(factory, "openai", bundled=False)
    assert holder.model_name() == "echo"
    assert factory.calls == 1


@pytest.mark.parametrize(
    ("mode", "bundled", "load"),
    [
        ("auto", True, False),
        ("extractive", True, False),
        ("extractive", False, False),
        ("generative", True, True),
        ("auto", False, True),
    ],
)
def test_start_up_loads_only_what_the_default_mode_needs(
    tmp_path: Path, mode: str, bundled: bool, load: bool
) -> None:
    settings = Settings(data_dir=tmp_path, llm={"answer_mode": mode})
    holder = GeneratorHolder(CountingFactory(), "hf_local", bundled=bundled)
    assert load_generator_at_startup(settings, holder) is load
    off = Settings(data_dir=tmp_path, llm={"answer_mode": mode, "load_at_startup": False})
    assert load_generator_at_startup(off, holder) is False


@pytest.mark.integration
def test_the_default_server_answers_extractively_without_loading_the_bundled_model(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, llm={"abstain_below": 0.0})
    assert settings.llm.load_at_startup
    assert settings.llm.answer_mode == "auto"
    app = create_app(settings, Components(embedder=HashEmbedder()))
    with TestClient(app) as client:
        services = app.state.loader.wait(timeout=300)
        assert services.generators.bundled
        assert not services.generators.loaded
        doc = ("vault.txt", io.BytesIO(b"The vault code is 7421. It opens the north door."))
        resp = client.post("/v1/collections/default/documents", files=[("files", doc)])
        assert resp.status_code == 201
        body = client.post(
            "/v1/collections/default/query", json={"question": "What is the vault code?"}
        ).json()
        assert body["answer_mode"] == "extractive"
        assert body["model"] == DEFAULT_MODEL_NAME
        assert "7421" in body["answer"]
        assert body["usage"]["prompt_tokens"] > 0  # counted by the bundled tokenizer
        assert not services.generators.loaded
    assert not (data_dir / "models").exists()  # nothing converted or written
