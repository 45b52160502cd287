"""The ``Generator`` contract every answering backend follows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One chat message, as the OpenAI API and Hugging Face chat templates take it."""

    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """Per-request generation options.

    Attributes:
        max_new_tokens: Most tokens to generate.
        temperature: 0 means greedy decoding.
        stop: Strings that end generation early.
        repetition_penalty: Above 1 discourages repeating earlier tokens (local models; small
            models otherwise loop greedily); 1 turns it off.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class Completion:
    """A finished generation.

    Attributes:
        text: The generated text (without the prompt).
        completion_tokens: Tokens generated, counted by the model's tokenizer or the provider.
        prompt_tokens: Tokens in the prompt as the model or provider counted them.
        finish_reason: ``stop`` or ``length``.
    """

    text: str
    completion_tokens: int
    prompt_tokens: int
    finish_reason: str = "stop"
    extra: dict[str, object] = field(default_factory=dict)


TokenizerKind = Literal["hf", "openai", "estimate"]


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer counts a generator's prompts (``prompts.tokenizers.tokenizer_for``).

    Attributes:
        kind: ``hf`` (a Hugging Face tokenizer and its chat template: exact), ``openai``
            (tiktoken for OpenAI's model names, an estimate for any other model behind an
            OpenAI-compatible server) or ``estimate``.
        model: The model: a folder, hub id or GGUF path for ``hf`` (None for the bundled
            SmolLM2-135M-Instruct), a model name otherwise.
        loaded: The generator's own loaded tokenizer object, used instead of loading
            ``model`` again (``hf`` only).
    """

    kind: TokenizerKind
    model: str | None = None
    loaded: Any = field(default=None, compare=False, repr=False)


@runtime_checkable
class Generator(Protocol):
    """Turns chat messages into text.

    ``generate`` and ``stream`` block the calling thread; the service runs them off the event
    loop. ``stream`` yields text deltas whose concatenation equals what ``generate`` returns for
    the same greedy request.
    """

    model_name: str
    context_window: int
    supports_streaming: bool
    tokenizer_spec: TokenizerSpec
    """The tokenizer that counts this model's prompts (the budget fits prompts with it)."""

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Generate a whole answer.

        Raises:
            ProviderError: the backend failed (502); ProviderTimeout when it timed out (504).
        """

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        """Yield the answer as text deltas."""

    def close(self) -> None:
        """Release the model or client."""
