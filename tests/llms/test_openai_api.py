from __future__ import annotations

import socket
import time

import openai
import pytest

from core.errors import ConfigurationError, ProviderError, ProviderTimeout
from llms.base import GenerationParams, Generator
from llms.hf_local import HFLocalGenerator
from llms.openai_api import (
    DEFAULT_CONTEXT_WINDOW,
    PLACEHOLDER_API_KEY,
    OpenAIGenerator,
    is_local_url,
    known_context_window,
)
from tests.llms.chats import CHAT
from tests.llms.openai_compat_server import LoopbackServer

PARAMS = GenerationParams(max_new_tokens=16)


def client(
    server: LoopbackServer, prefix: str = "", *, max_retries: int = 0, timeout_s: float = 60.0
) -> OpenAIGenerator:
    return OpenAIGenerator(
        "SmolLM2-135M-Instruct",
        base_url=f"{server.url}{prefix}/v1",
        max_retries=max_retries,
        timeout_s=timeout_s,
    )


@pytest.mark.integration
def test_generate_through_a_compatible_server(
    compat_server: LoopbackServer, hf_generator: HFLocalGenerator
) -> None:
    remote = client(compat_server)
    assert isinstance(remote, Generator)
    try:
        completion = remote.generate(CHAT, PARAMS)
    finally:
        remote.close()
    local = hf_generator.generate(CHAT, PARAMS)
    assert "Paris" in completion.text
    assert completion == local  # text, token counts (from usage) and finish reason


@pytest.mark.integration
def test_stream_through_a_compatible_server(
    compat_server: LoopbackServer, hf_generator: HFLocalGenerator
) -> None:
    remote = client(compat_server)
    deltas = list(remote.stream(CHAT, PARAMS))
    assert len(deltas) > 1
    assert "".join(deltas) == remote.generate(CHAT, PARAMS).text
    assert "".join(deltas) == hf_generator.generate(CHAT, PARAMS).text


@pytest.mark.integration
def test_stop_strings_reach_the_server(compat_server: LoopbackServer) -> None:
    remote = client(compat_server)
    params = GenerationParams(max_new_tokens=16, stop=("Paris",))
    completion = remote.generate(CHAT, params)
    assert completion.text
    assert "Paris" not in completion.text
    assert "".join(remote.stream(CHAT, params)) == completion.text


@pytest.mark.integration
def test_models_are_listed(compat_server: LoopbackServer) -> None:
    raw = openai.OpenAI(api_key=PLACEHOLDER_API_KEY, base_url=f"{compat_server.url}/v1")
    assert [m.id for m in raw.models.list()] == ["SmolLM2-135M-Instruct"]


@pytest.mark.integration
def test_server_error_is_a_provider_error_after_retries(compat_server: LoopbackServer) -> None:
    hits_before = compat_server.app.state.hits["error"]
    remote = client(compat_server, "/error", max_retries=1)
    with pytest.raises(
        ProviderError, match=r"/error/v1 answered HTTP 500: .*fails on purpose"
    ) as e:
        remote.generate(CHAT, PARAMS)
    assert not isinstance(e.value, ProviderTimeout)
    assert e.value.detail["status"] == 500
    assert compat_server.app.state.hits["error"] - hits_before == 2  # one try, one retry


@pytest.mark.integration
def test_server_error_while_streaming_is_a_provider_error(compat_server: LoopbackServer) -> None:
    remote = client(compat_server, "/error")
    with pytest.raises(ProviderError, match="HTTP 500"):
        list(remote.stream(CHAT, PARAMS))


@pytest.mark.integration
def test_slow_server_is_a_provider_timeout(compat_server: LoopbackServer) -> None:
    remote = client(compat_server, "/slow", timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match="/slow/v1 did not answer within the timeout"):
        remote.generate(CHAT, PARAMS)
    assert time.monotonic() - started < 10  # the server answers after 12 s
    with pytest.raises(ProviderTimeout):
        list(remote.stream(CHAT, PARAMS))


def test_unreachable_server_is_a_provider_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    remote = OpenAIGenerator("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(ProviderError, match=f"cannot reach http://127.0.0.1:{port}/v1") as e:
        remote.generate(CHAT, PARAMS)
    assert not isinstance(e.value, ProviderTimeout)


def test_missing_api_key_for_openai_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="needs an API key.*RAG_LLM__API_KEY"):
        OpenAIGenerator("gpt-4o")
    with pytest.raises(ConfigurationError, match="needs an API key"):
        OpenAIGenerator("some-model", base_url="https://api.example.com/v1")


def test_local_server_needs_no_api_key() -> None:
    remote = OpenAIGenerator("local-model", base_url="http://127.0.0.1:9/v1")
    assert remote._client.api_key == PLACEHOLDER_API_KEY
    remote.close()


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://192.168.1.20:8000/v1", True),
        ("http://vllm:8000/v1", True),
        ("http://host.docker.internal:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://api.together.xyz/v1", False),
        ("http://8.8.8.8/v1", False),
    ],
)
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


def test_context_window_table_and_fallbacks() -> None:
    assert known_context_window("gpt-4o") == 128_000
    assert known_context_window("gpt-4o-mini-2024-07-18") == 128_000
    assert known_context_window("gpt-4-0613") == 8_192
    assert known_context_window("gpt-3.5-turbo") == 16_385
    assert known_context_window("gpt-4.1-mini") == 1_047_576
    assert known_context_window("llama-3") is None

    def window(model: str, configured: int | None = None) -> int:
        return OpenAIGenerator(model, api_key="k", context_window=configured).context_window

    assert window("gpt-4o") == 128_000
    assert window("my-local-model") == DEFAULT_CONTEXT_WINDOW == 8192
    assert window("gpt-4o", 4096) == 4096  # the setting overrides the table
