"""Generation through the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp, ...).

Retries with exponential backoff are the official client's own (``max_retries``); its errors are
mapped to the domain errors: a timeout to ``ProviderTimeout`` (504), everything else the provider
does wrong to ``ProviderError`` (502), each message naming the server and HTTP status.

API key: required when talking to OpenAI itself (a missing key is a ``ConfigurationError`` at
start-up). When ``base_url`` points at a local server (loopback, a private or link-local
address, ``localhost``, ``*.local``/``*.internal`` or a single-label host such as a Compose
service name) a missing key is replaced by the placeholder ``"not-needed"``, since such servers
usually ignore it. The key and URL are always passed explicitly, so the client never falls back to
``OPENAI_API_KEY``/``OPENAI_BASE_URL`` from the environment.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigurationError, InvalidRequest, ProviderError, ProviderTimeout
from llms.base import Completion, GenerationParams, Message, TokenizerSpec
from llms.stops import StopFilter, cut_at_stop

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
PLACEHOLDER_API_KEY = "not-needed"
DEFAULT_CONTEXT_WINDOW = 8192
"""Used for models neither configured nor in ``KNOWN_CONTEXT_WINDOWS``: small enough for
almost every chat model served today, so a prompt packed to it is rarely refused."""

KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
}
"""Context lengths of OpenAI models, matched by the longest prefix of the model name so that
dated snapshots (``gpt-4o-2024-08-06``) inherit their family's value."""

_MAX_API_STOPS = 4  # OpenAI accepts at most four stop sequences; the rest are cut locally.
_ESTIMATED_CHARS_PER_TOKEN = 4


def known_context_window(model: str) -> int | None:
    """Look up an OpenAI model's context length.

    Args:
        model: A model name such as ``gpt-4o`` or ``gpt-4o-2024-08-06``.

    Returns:
        The context length in tokens, or None for a model not in the table.
    """
    matches = [p for p in KNOWN_CONTEXT_WINDOWS if model == p or model.startswith(p + "-")]
    return KNOWN_CONTEXT_WINDOWS[max(matches, key=len)] if matches else None


def is_local_url(url: str) -> bool:
    """Tell whether ``url`` points at a server on this machine or a private network.

    Args:
        url: A base URL such as ``http://127.0.0.1:8080/v1``.

    Returns:
        True for loopback, private and link-local addresses, ``localhost``, ``*.local``,
        ``*.internal`` and single-label host names.
    """
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return False
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host
    return address.is_loopback or address.is_private or address.is_link_local


class OpenAIGenerator:
    """A chat model behind the OpenAI chat-completions API.

    Attributes:
        model_name: The model asked for in every request.
        context_window: The configured value, else the known value for OpenAI models, else
            ``DEFAULT_CONTEXT_WINDOW`` (8192).
        supports_streaming: Always True.
        base_url: The server's base URL.
        tokenizer_spec: tiktoken for OpenAI's model names, an estimate for others.
    """

    supports_streaming: bool = True

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        context_window: int | None = None,
    ) -> None:
        """Create the client; nothing is sent until the first request.

        Args:
            model: Model name; ``gpt-4o-mini`` when None.
            api_key: The API key; may be None only for a local ``base_url``.
            base_url: An OpenAI-compatible server (``http://host:port/v1``); OpenAI when None.
            timeout_s: Seconds one request attempt may take.
            max_retries: Retries, with the client's exponential backoff, of connection errors,
                timeouts, 408, 409, 429 and 5xx answers.
            context_window: Overrides the model's context length, in tokens.

        Raises:
            ConfigurationError: no API key for a non-local server, or invalid settings.
        """
        import openai

        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        if not api_key:
            if base_url is None or not is_local_url(base_url):
                raise ConfigurationError(
                    f"the openai backend needs an API key for {self.base_url}; set "
                    "RAG_LLM__API_KEY (or RAG_LLM__BASE_URL to a local OpenAI-compatible server)"
                )
            api_key = PLACEHOLDER_API_KEY
        if timeout_s <= 0 or max_retries < 0:
            raise ConfigurationError("timeout_s must be positive and max_retries not negative")
        self.model_name = model or DEFAULT_OPENAI_MODEL
        self.context_window = (
            context_window or known_context_window(self.model_name) or DEFAULT_CONTEXT_WINDOW
        )
        self.tokenizer_spec = TokenizerSpec("openai", self.model_name)
        self._client = openai.OpenAI(
            api_key=api_key, base_url=self.base_url, timeout=timeout_s, max_retries=max_retries
        )

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Generate a whole answer.

        Args:
            messages: The chat.
            params: Length, temperature and stop strings.

        Returns:
            The answer, cut before the first stop string. Token counts come from the response's
            ``usage``; a server that sends none gets an estimate (4 characters a token) and
            ``extra["usage_estimated"] = True``.

        Raises:
            ProviderTimeout: the server did not answer in time, retries included.
            ProviderError: the server failed or could not be reached.
        """
        with self._mapped_errors():
            response = self._client.chat.completions.create(**self._request(messages, params))
        if not response.choices:
            raise ProviderError(f"{self.base_url} answered without any choice")
        choice = response.choices[0]
        text, stopped = cut_at_stop(choice.message.content or "", params.stop)
        finish_reason = "stop" if stopped else (choice.finish_reason or "stop")
        usage = response.usage
        if usage is not None:
            return Completion(
                text=text,
                completion_tokens=usage.completion_tokens,
                prompt_tokens=usage.prompt_tokens,
                finish_reason=finish_reason,
            )
        prompt_chars = sum(len(m["content"]) for m in messages)
        return Completion(
            text=text,
            completion_tokens=_estimate_tokens(len(text)),
            prompt_tokens=_estimate_tokens(prompt_chars),
            finish_reason=finish_reason,
            extra={"usage_estimated": True},
        )

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        """Yield the answer as content deltas (``stream=True``).

        Closing the iterator early closes the HTTP response, which ends the generation on
        servers that notice a dropped connection.

        Args:
            messages: The chat.
            params: Length, temperature and stop strings.

        Yields:
            Non-empty text deltas.

        Raises:
            ProviderTimeout: the server did not answer in time.
            ProviderError: the server failed, before or during the stream.
        """
        stops = StopFilter(params.stop)
        with self._mapped_errors():
            response = self._client.chat.completions.create(
                **self._request(messages, params), stream=True
            )
            with response:
                for chunk in response:
                    if not chunk.choices:
                        continue
                    delta = stops.feed(chunk.choices[0].delta.content or "")
                    if delta:
                        yield delta
                    if stops.stopped:
                        return
        tail = stops.flush()
        if tail:
            yield tail

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _request(self, messages: Sequence[Message], params: GenerationParams) -> dict[str, Any]:
        if params.max_new_tokens < 1:
            raise InvalidRequest("max_new_tokens must be at least 1")
        request: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        stops = [s for s in params.stop if s][:_MAX_API_STOPS]
        if stops:
            request["stop"] = stops
        return request

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        import openai

        try:
            yield
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(
                f"{self.base_url} did not answer within the timeout",
                {"base_url": self.base_url},
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach {self.base_url}: {exc.__cause__ or exc}",
                {"base_url": self.base_url},
            ) from exc
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"{self.base_url} answered HTTP {exc.status_code}: {_provider_message(exc)}",
                {"base_url": self.base_url, "status": exc.status_code},
            ) from exc
        except openai.OpenAIError as exc:
            raise ProviderError(
                f"{self.base_url} failed: {exc}", {"base_url": self.base_url}
            ) from exc


def _provider_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / _ESTIMATED_CHARS_PER_TOKEN)
