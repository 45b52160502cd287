"""Answering: retrieve, pack the prompt into the model's window, generate, cite."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.settings import SecuritySettings, Settings
from core import tracing
from core.errors import InvalidRequest, LimitExceeded
from core.types import Hit
from llms.base import Completion, GenerationParams, Generator, TokenizerSpec
from llms.gguf import DEFAULT_CONTEXT_WINDOW, DEFAULT_MODEL_NAME
from llms.queue import GenerationGate, iterate_in_thread
from prompts.budget import PackedPrompt
from prompts.render import build_prompt, extract_final_answer
from prompts.templates import TemplateRegistry
from prompts.tokenizers import Tokenizer, tokenizer_for
from prompts.types import ContextChunk
from vectorstores.base import Filter

from .compact import COMPACT_STOPS, COMPACT_STRATEGY, focus_order, renumber, use_compact
from .evidence import Evidence
from .observer import NullObserver, ServiceObserver
from .reader import EvidenceReader, Reading, abstention_answer, extractive_answer, resolve_mode
from .search import SearchService

CITATION_MARK = re.compile(r"\[(\d{1,3})\]")
CITED_PIECE = re.compile(r"(?<=\]) ")
"""Where an answer made of cited sentences may be cut into stream deltas."""


@dataclass(frozen=True)
class LLMOptions:
    """Per-request model options; None keeps the server's default."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class AnswerRequest:
    """A question and how to answer it."""

    question: str
    strategy: str | None = None
    role: str | None = None
    examples: Sequence[Mapping[str, Any]] | None = None
    history: Sequence[Mapping[str, Any]] = ()
    top_k: int | None = None
    filter: Filter | None = None
    mode: str | None = None
    params: Mapping[str, str] | None = None
    llm: LLMOptions = field(default_factory=LLMOptions)
    answer_mode: str | None = None


@dataclass(frozen=True)
class Citation:
    """A chunk that was in the prompt, numbered as the model saw it."""

    number: int
    chunk_id: str
    document_id: str
    filename: str
    page: int | None
    heading_path: str
    score: float
    quote: str
    cited: bool


@dataclass(frozen=True)
class Prepared:
    """Everything decided before the model runs."""

    packed: PackedPrompt
    hits: list[Hit]
    params: GenerationParams
    retrieval_s: float
    started: float
    reading: Reading | None = None
    answer_mode: str = "generative"
    reading_s: float = 0.0

    @property
    def without_model(self) -> str | None:
        """The answer when no model is needed (abstention or extractive mode), else None."""
        if self.reading is None:
            return None
        if self.reading.abstain:
            return abstention_answer(self.reading.evidence)
        if self.answer_mode == "extractive":
            return extractive_answer(self.reading.evidence)
        return None


@dataclass(frozen=True)
class AnswerResult:
    """A finished answer with its evidence and accounting."""

    answer: str
    reasoning: str | None
    citations: list[Citation]
    usage: dict[str, Any]
    timings: dict[str, float]
    model: str
    finish_reason: str
    evidence: list[Evidence] = field(default_factory=list)
    answer_mode: str = "generative"
    abstained: bool = False
    confidence: float | None = None


class GeneratorHolder:
    """Loads the answering model once, at start-up or on first use.

    When the configured model is the bundled SmolLM2-135M (``bundled``), its name, context
    window and tokenizer are known without loading it, so answers that need no model
    (extractive, abstentions) never load (or, on a first start, convert) it.
    """

    def __init__(
        self, factory: Callable[[], Generator], backend: str, *, bundled: bool = False
    ) -> None:
        self._factory = factory
        self._generator: Generator | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()
        self.backend = backend
        self.bundled = bundled

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded."""
        return self._generator is not None

    def model_name(self) -> str:
        """The model's name; the bundled model's is known without loading it."""
        if self._generator is None and self.bundled:
            return DEFAULT_MODEL_NAME
        return self.get().model_name

    def context_window(self) -> int:
        """The model's context length; the bundled model's is known without loading it."""
        if self._generator is None and self.bundled:
            return DEFAULT_CONTEXT_WINDOW
        return self.get().context_window

    def get(self) -> Generator:
        """Return the generator, loading it first if needed."""
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    self._generator = self._factory()
        return self._generator

    def tokenizer(self) -> Tokenizer:
        """The tokenizer that counts the generator's prompts (its ``tokenizer_spec``)."""
        if self._tokenizer is None:
            unloaded_bundle = self._generator is None and self.bundled
            # The bundled model's tokenizer loads from its GGUF file, without the weights.
            spec = TokenizerSpec("hf") if unloaded_bundle else self.get().tokenizer_spec
            self._tokenizer = tokenizer_for(spec)
        return self._tokenizer

    def close(self) -> None:
        """Release the model."""
        if self._generator is not None:
            self._generator.close()


def check_limits(limits: SecuritySettings, request: AnswerRequest) -> None:
    """Refuse a question or a history longer than the security settings allow.

    Raises:
        LimitExceeded: over ``RAG_SECURITY__MAX_QUESTION_CHARS`` characters of question or
            ``RAG_SECURITY__MAX_HISTORY_MESSAGES`` history messages.
    """
    if len(request.question) > limits.max_question_chars:
        raise LimitExceeded(
            f"the question is {len(request.question)} characters; at most "
            f"{limits.max_question_chars} are accepted (RAG_SECURITY__MAX_QUESTION_CHARS)"
        )
    if len(request.history) > limits.max_history_messages:
        raise LimitExceeded(
            f"{len(request.history)} history messages; at most "
            f"{limits.max_history_messages} are accepted (RAG_SECURITY__MAX_HISTORY_MESSAGES)"
        )


class AnswerService:
    """Retrieval-augmented answering over a collection."""

    def __init__(
        self,
        search: SearchService,
        generators: GeneratorHolder,
        registry: TemplateRegistry,
        gate: GenerationGate,
        settings: Settings,
        reader: EvidenceReader | None = None,
        observer: ServiceObserver | None = None,
    ) -> None:
        self._search = search
        self._reader = reader
        self._generators = generators
        self._registry = registry
        self.gate = gate
        self._settings = settings
        self._observer: ServiceObserver = observer or NullObserver()

    @property
    def registry(self) -> TemplateRegistry:
        """The prompt templates."""
        return self._registry

    def model_name(self) -> str:
        """The answering model's name (loads it if needed, unless it is the bundled one)."""
        return self._generators.model_name()

    def _check(self, request: AnswerRequest) -> None:
        check_limits(self._settings.security, request)
        wanted = request.llm.model
        if wanted and self._generators.backend == "hf_local" and wanted != self.model_name():
            raise InvalidRequest(
                f"model '{wanted}' is not loaded; this server answers with "
                f"'{self.model_name()}' (leave llm.model out to use it)"
            )

    def prepare(self, collection: str, request: AnswerRequest) -> Prepared:
        """Retrieve and pack the prompt (blocking; no model call)."""
        started = time.perf_counter()
        self._check(request)
        if not request.question.strip():
            raise InvalidRequest("the question is empty; ask something")
        llm = self._settings.llm
        max_new = request.llm.max_tokens or llm.max_new_tokens
        top_k = request.top_k or self._settings.retrieval.top_k
        outcome = self._search.search(
            collection, request.question, top_k=top_k, filter=request.filter, mode=request.mode
        )
        retrieval_s = time.perf_counter() - started
        strategy = request.strategy or self._settings.prompts.default_strategy
        with tracing.span("packing", hits=len(outcome.hits)) as packing:
            packed = self._pack(request, outcome.hits, max_new, strategy)
            packing.set_attribute("prompt_tokens", packed.report.prompt_tokens)
        temperature = (
            llm.temperature if request.llm.temperature is None else request.llm.temperature
        )
        params = GenerationParams(
            max_new_tokens=max_new,
            temperature=temperature,
            repetition_penalty=llm.repetition_penalty,
        )
        return Prepared(packed, outcome.hits, params, retrieval_s, started)

    def _pack(
        self,
        request: AnswerRequest,
        chunks: Sequence[Hit | ContextChunk],
        max_new: int,
        strategy: str,
    ) -> PackedPrompt:
        """Render ``strategy`` over ``chunks`` and fit it to the window, ``max_new`` reserved."""
        window = self._settings.llm.context_window or self._generators.context_window()
        if max_new >= window:
            raise InvalidRequest(
                f"max_tokens {max_new} leaves no room for a prompt in the model's "
                f"{window}-token window; ask for fewer"
            )
        return build_prompt(
            request.question,
            chunks,
            tokenizer=self._generators.tokenizer(),
            window=window,
            max_new_tokens=max_new,
            registry=self._registry,
            strategy=strategy,
            history=request.history,
            examples=request.examples,
            role=request.role,
            params=request.params,
            overflow=self._settings.prompts.overflow,
        )

    def prepare_answer(self, collection: str, request: AnswerRequest) -> Prepared:
        """Retrieve, pack, then read the evidence and settle the answer mode (no model call).

        A generative answer that does not abstain gets the compact prompt when the profile
        asks for it (``app.services.compact``).
        """
        prepared = self.prepare(collection, request)
        mode = resolve_mode(request.answer_mode, self._settings.llm.answer_mode, self.model_name())
        if self._reader is None:
            return dataclasses.replace(prepared, answer_mode=mode)
        t0 = time.perf_counter()
        unknown = self._search.unknown_share(collection, request.question)
        with tracing.span("evidence", chunks=len(prepared.packed.chunks)):
            reading = self._reader.read(
                request.question, [c.text for c in prepared.packed.chunks], unknown
            )
        prepared = dataclasses.replace(
            prepared, reading=reading, answer_mode=mode, reading_s=time.perf_counter() - t0
        )
        compact = use_compact(self._settings.llm.prompt_profile, self._generators.bundled)
        if mode == "generative" and not reading.abstain and compact:
            return self._compact(prepared, request)
        return prepared

    def _compact(self, prepared: Prepared, request: AnswerRequest) -> Prepared:
        """Re-pack over the evidence's chunks with the short-answer template and stops."""
        assert prepared.reading is not None
        llm = self._settings.llm
        chunks = prepared.packed.chunks
        order = focus_order(prepared.reading.evidence, len(chunks), llm.compact_sources)
        max_new = request.llm.max_tokens or llm.compact_max_new_tokens
        packed = self._pack(
            request,
            [chunks[n - 1] for n in order],
            max_new,
            request.strategy or COMPACT_STRATEGY,
        )
        reading = dataclasses.replace(
            prepared.reading, evidence=renumber(prepared.reading.evidence, order)
        )
        params = dataclasses.replace(prepared.params, max_new_tokens=max_new, stop=COMPACT_STOPS)
        return dataclasses.replace(prepared, packed=packed, params=params, reading=reading)

    def finish(
        self, prepared: Prepared, text: str, completion: Completion | None, generation_s: float
    ) -> AnswerResult:
        """Extract the answer, attach citations and usage."""
        reasoning: str | None = None
        answer = text.strip()
        if prepared.packed.reasoning:
            answer, reasoning = extract_final_answer(text)
        completion_tokens = (
            completion.completion_tokens
            if completion is not None
            else self._generators.tokenizer().count(text)
        )
        report = prepared.packed.report
        usage = {
            **report.to_dict(),
            "completion_tokens": completion_tokens,
            "total_tokens": report.prompt_tokens + completion_tokens,
        }
        if prepared.without_model is None:
            self._observer.answer_generated(generation_s)
        total_s = time.perf_counter() - prepared.started
        timings = {
            "retrieval_ms": round(prepared.retrieval_s * 1000, 1),
            "evidence_ms": round(prepared.reading_s * 1000, 1),
            "generation_ms": round(generation_s * 1000, 1),
            "total_ms": round(total_s * 1000, 1),
        }
        reading = prepared.reading
        return AnswerResult(
            answer=answer,
            reasoning=reasoning,
            citations=citations_for(prepared, answer),
            usage=usage,
            timings=timings,
            model=self._generators.model_name(),
            finish_reason=completion.finish_reason if completion is not None else "stop",
            evidence=reading.evidence if reading is not None else [],
            answer_mode=prepared.answer_mode,
            abstained=reading is not None and reading.abstain,
            confidence=reading.confidence if reading is not None else None,
        )

    def answer_sync(self, collection: str, request: AnswerRequest) -> AnswerResult:
        """Answer on the calling thread (command line, evaluation)."""
        prepared = self.prepare_answer(collection, request)
        if prepared.without_model is not None:
            return self.finish(prepared, prepared.without_model, None, 0.0)
        t0 = time.perf_counter()
        with tracing.span("generation", model=self.model_name()):
            completion = self._generators.get().generate(prepared.packed.messages, prepared.params)
        return self.finish(prepared, completion.text, completion, time.perf_counter() - t0)

    async def answer(self, collection: str, request: AnswerRequest) -> AnswerResult:
        """Answer off the event loop, holding a slot of the generation queue."""
        prepared = await asyncio.to_thread(self.prepare_answer, collection, request)
        if prepared.without_model is not None:
            return self.finish(prepared, prepared.without_model, None, 0.0)
        async with self.gate.slot(), self._generation_span():
            t0 = time.perf_counter()
            work = asyncio.ensure_future(
                asyncio.to_thread(
                    self._generators.get().generate, prepared.packed.messages, prepared.params
                )
            )
            try:
                completion = await asyncio.shield(work)
            except asyncio.CancelledError:
                # The thread cannot be interrupted: keep the slot until the model is idle.
                with contextlib.suppress(Exception):
                    await work
                raise
            generation_s = time.perf_counter() - t0
        return self.finish(prepared, completion.text, completion, generation_s)

    @contextlib.asynccontextmanager
    async def _generation_span(self) -> AsyncIterator[None]:
        with tracing.span("generation", model=self.model_name()):
            yield

    async def open_stream(
        self, collection: str, request: AnswerRequest
    ) -> AsyncIterator[str | AnswerResult]:
        """Prepare and take a queue slot now (errors raise here), then stream.

        The returned iterator yields text deltas, then one ``AnswerResult``.
        """
        prepared = await asyncio.to_thread(self.prepare_answer, collection, request)
        text = prepared.without_model
        if text is not None:
            return self._single_event_stream(self.finish(prepared, text, None, 0.0))
        slot = self.gate.slot()
        await slot.__aenter__()
        generator = self._generators.get()

        span = tracing.start_span("generation", model=self.model_name(), stream=True)

        async def events() -> AsyncIterator[str | AnswerResult]:
            try:
                t0 = time.perf_counter()
                parts: list[str] = []
                async for delta in iterate_in_thread(
                    lambda: generator.stream(prepared.packed.messages, prepared.params)
                ):
                    parts.append(delta)
                    yield delta
                generation_s = time.perf_counter() - t0
                yield self.finish(prepared, "".join(parts), None, generation_s)
            finally:
                span.end()
                await slot.__aexit__(None, None, None)

        return events()

    @staticmethod
    def _single_event_stream(result: AnswerResult) -> AsyncIterator[str | AnswerResult]:
        """A stream of an answer made without a model: a delta per cited sentence, then itself."""

        async def events() -> AsyncIterator[str | AnswerResult]:
            for i, piece in enumerate(CITED_PIECE.split(result.answer)):
                yield piece if i == 0 else " " + piece
            yield result

        return events()


def citations_for(prepared: Prepared, answer: str) -> list[Citation]:
    """Number the prompt's chunks as the model saw them; mark those the answer cites."""
    scores = {hit.chunk.id: hit.score for hit in prepared.hits}
    cited = {int(m) for m in CITATION_MARK.findall(answer)}
    out: list[Citation] = []
    for number, context in enumerate(prepared.packed.chunks, 1):
        chunk = context.chunk
        out.append(
            Citation(
                number=number,
                chunk_id=chunk.id,
                document_id=chunk.document_id,
                filename=chunk.source,
                page=chunk.page,
                heading_path=chunk.heading_path,
                score=scores.get(chunk.id, 0.0),
                quote=context.text,
                cited=number in cited,
            )
        )
    return out
