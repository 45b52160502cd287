from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigurationError, ContextBudgetExceeded
from llms import hf_local
from llms.base import GenerationParams, Generator, Message
from llms.gguf import (
    CONVERSION_MARKER,
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_MODEL_NAME,
    default_gguf_path,
    is_converted,
)
from llms.hf_local import HFLocalGenerator
from tests.llms.chats import CHAT, POEM, STORY

pytestmark = pytest.mark.integration


def test_first_construction_converts_the_gguf_into_a_folder(
    hf_generator: HFLocalGenerator, model_cache: Path
) -> None:
    folder = model_cache / DEFAULT_MODEL_NAME
    assert hf_generator.converted
    assert Path(hf_generator.loaded_from) == folder
    for name in ("config.json", "model.safetensors", "tokenizer.json", CONVERSION_MARKER):
        assert (folder / name).is_file(), name
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert is_converted(default_gguf_path(), folder)
    assert [p.name for p in model_cache.iterdir()] == [DEFAULT_MODEL_NAME]  # no temp leftovers
    # What the server assumes before loading it (app.services.answers.GeneratorHolder).
    assert hf_generator.model_name == DEFAULT_MODEL_NAME
    assert hf_generator.context_window == DEFAULT_CONTEXT_WINDOW


def test_second_construction_loads_the_folder_and_not_the_gguf(
    hf_generator: HFLocalGenerator, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained
    calls: list[tuple[Any, dict[str, Any]]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    again = HFLocalGenerator(cache_dir=model_cache)
    try:
        assert not again.converted
        assert again.loaded_from == str(model_cache / DEFAULT_MODEL_NAME)
        assert len(calls) == 1
        assert "gguf_file" not in calls[0][1]
    finally:
        again.close()


def test_is_a_generator_with_its_attributes(hf_generator: HFLocalGenerator) -> None:
    assert isinstance(hf_generator, Generator)
    assert hf_generator.model_name == DEFAULT_MODEL_NAME
    assert hf_generator.context_window == 8192
    assert hf_generator.supports_streaming
    assert hf_generator.tokenizer.eos_token == "<|im_end|>"


def test_generate_answers_a_simple_chat(hf_generator: HFLocalGenerator) -> None:
    completion = hf_generator.generate(CHAT, GenerationParams(max_new_tokens=16))
    assert "Paris" in completion.text
    assert completion.finish_reason == "stop"


@pytest.mark.parametrize("messages", [CHAT, POEM], ids=["one-line", "multi-line"])
def test_stream_deltas_join_to_the_greedy_text(
    hf_generator: HFLocalGenerator, messages: list[Message]
) -> None:
    params = GenerationParams(max_new_tokens=24)
    expected = hf_generator.generate(messages, params).text
    assert ("\n" in expected) == (messages is POEM)
    deltas = list(hf_generator.stream(messages, params))
    assert len(deltas) > 1
    assert all(deltas)
    assert "".join(deltas) == expected


def test_token_counts_are_exact(hf_generator: HFLocalGenerator) -> None:
    tokenizer = hf_generator.tokenizer
    prompt_ids = tokenizer.apply_chat_template(
        CHAT, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    completion = hf_generator.generate(CHAT, GenerationParams(max_new_tokens=16))
    assert completion.prompt_tokens == len(prompt_ids) == hf_generator.count_prompt_tokens(CHAT)
    answer_ids = tokenizer(completion.text, add_special_tokens=False)["input_ids"]
    assert completion.completion_tokens == len(answer_ids)

    cut = hf_generator.generate(POEM, GenerationParams(max_new_tokens=12))
    assert cut.finish_reason == "length"
    assert cut.completion_tokens == 12


def test_stop_strings_end_the_answer(hf_generator: HFLocalGenerator) -> None:
    free = hf_generator.generate(POEM, GenerationParams(max_new_tokens=24)).text
    stop = free.split()[3]
    expected = free[: free.index(stop)]
    params = GenerationParams(max_new_tokens=24, stop=("never-generated", stop))
    stopped = hf_generator.generate(POEM, params)
    assert stopped.text == expected
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < 24
    assert "".join(hf_generator.stream(POEM, params)) == expected


def test_sampling_with_temperature(hf_generator: HFLocalGenerator) -> None:
    completion = hf_generator.generate(CHAT, GenerationParams(max_new_tokens=8, temperature=0.9))
    assert completion.text.strip()
    assert 0 < completion.completion_tokens <= 8


def test_closing_a_stream_early_stops_the_generation(
    hf_generator: HFLocalGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[bool] = []
    real_call = hf_local._CancelCriteria.__call__
    first_read = threading.Event()

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        if first_read.is_set():  # hold the generation until the stream is closed (or 30 s)
            self.event.wait(30)
        steps.append(self.event.is_set())
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(hf_local._CancelCriteria, "__call__", counting)
    stream = hf_generator.stream(STORY, GenerationParams(max_new_tokens=200))
    assert next(stream)
    first_read.set()
    at_first = len(steps)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "hf-generate"]
    # Stopped at the first step after the cancel (one more may have been under way), not
    # after 200 tokens.
    assert len(steps) <= at_first + 2, (at_first, len(steps))
    assert steps[-1]


def test_prompt_longer_than_the_context_window_is_refused(hf_generator: HFLocalGenerator) -> None:
    huge: list[Message] = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(ContextBudgetExceeded, match="context window"):
        hf_generator.generate(huge, GenerationParams(max_new_tokens=4))


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantization_on_cpu_is_refused_clearly(model_cache: Path, quantization: str) -> None:
    with pytest.raises(ConfigurationError, match=r"needs a CUDA GPU.*RAG_LLM__QUANTIZATION=none"):
        HFLocalGenerator(cache_dir=model_cache, device="cpu", quantization=quantization)


def test_cuda_without_a_gpu_is_refused(model_cache: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip(reason="this machine has CUDA")
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        HFLocalGenerator(cache_dir=model_cache, device="cuda")


def test_unknown_model_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot load the model"):
        HFLocalGenerator(str(tmp_path / "no-such-model"))


def test_invalid_dtype_is_a_configuration_error(model_cache: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown dtype"):
        HFLocalGenerator(cache_dir=model_cache, dtype="float8")


def test_folder_without_marker_is_not_taken_for_a_conversion(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert not is_converted(default_gguf_path(), tmp_path)
