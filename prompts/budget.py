"""Fitting a prompt to the model's context window, counted with the model's own tokenizer.

The window holds the prompt and the answer, so ``max_new_tokens`` is reserved first. What is
left is filled in priority order:

1. the fixed parts: system prompt, template text and the question (never cut; if they do not
   fit, ``ContextBudgetExceeded`` says by how much and what to change);
2. the chat history, newest turn first (the kept turns are the most recent ones);
3. the few-shot examples, in order;
4. the retrieved chunks by rank. The first chunk that does not fit is dropped or, with
   ``overflow="truncate"``, cut at a sentence boundary; either way no lower-ranked chunk is
   added after it, so the chunks kept are always a prefix of the ranking.

Every decision is made on the token count of the *rendered* messages
(``Tokenizer.count_messages``: chat format included), never on a sum of pieces, because
templates and chat formats add tokens of their own. Each stage looks for the largest prefix
that fits with a guess from per-item counts and a binary search around it, so 50 chunks cost
a handful of renders rather than 50.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.errors import ContextBudgetExceeded, InvalidRequest
from llms.base import Message
from prompts.tokenizers import Tokenizer, sentence_ends
from prompts.types import ContextChunk, Example

Overflow = Literal["drop", "truncate"]
Renderer = Callable[[Sequence[Message], Sequence[Example], Sequence[ContextChunk]], list[Message]]
"""Renders (history, examples, chunks) into messages; the question and role are bound in it."""

PARTS = ("system", "examples", "history", "context", "question")


@dataclass(frozen=True)
class BudgetReport:
    """How the context window was spent.

    Attributes:
        window: The model's context length in tokens.
        reserve: Tokens reserved for the answer (``max_new_tokens``).
        prompt_tokens: Tokens of the final prompt, chat format included.
        tokens_by_part: ``system`` (system prompt, template text and chat-format overhead),
            ``examples``, ``history``, ``context`` (the sources and their delimiters) and
            ``question``; they add up to ``prompt_tokens``.
        chunks_used: Ids of the chunks in the prompt, in rank order; citation ``[i]`` is
            ``chunks_used[i - 1]``. A truncated chunk is listed here and in
            ``chunks_truncated``.
        chunks_dropped: Ids of the chunks left out, in rank order.
        chunks_truncated: Ids of the chunks cut at a sentence boundary (at most one, the last
            used).
        history_used: Prior messages kept (the most recent ones).
        history_dropped: Prior messages left out (the oldest ones).
        examples_used: Few-shot examples kept (the first ones).
        examples_dropped: Few-shot examples left out for lack of room.
        tokenizer: The tokenizer's name.
        estimated: True when the counts are an estimate, not the model's tokenizer.
    """

    window: int
    reserve: int
    prompt_tokens: int
    tokens_by_part: dict[str, int]
    chunks_used: list[str] = field(default_factory=list)
    chunks_dropped: list[str] = field(default_factory=list)
    chunks_truncated: list[str] = field(default_factory=list)
    history_used: int = 0
    history_dropped: int = 0
    examples_used: int = 0
    examples_dropped: int = 0
    tokenizer: str = ""
    estimated: bool = False

    @property
    def unused_tokens(self) -> int:
        """Tokens of the window neither in the prompt nor reserved for the answer."""
        return self.window - self.reserve - self.prompt_tokens

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (with ``unused_tokens``)."""
        return asdict(self) | {"unused_tokens": self.unused_tokens}


@dataclass(frozen=True)
class PackedPrompt:
    """A prompt fitted to the window.

    Attributes:
        messages: The chat messages to send; ``count_messages(messages) + report.reserve``
            is at most ``report.window``.
        report: How the window was spent.
        chunks: The chunks in the prompt, in citation order (a truncated one has its cut text).
        template: The template's name (set by ``build_prompt``).
        reasoning: The template asks for reasoning and a final-answer line; pass the output
            through ``extract_final_answer``.
    """

    messages: list[Message]
    report: BudgetReport
    chunks: list[ContextChunk] = field(default_factory=list)
    template: str = ""
    reasoning: bool = False


def _largest_fitting(n: int, fits: Callable[[int], bool], guess: int) -> int:
    """Return the largest ``k`` in ``[0, n]`` with ``fits(k)``, given ``fits(0)``.

    Assumes ``fits`` is monotone (more items, more tokens). Probes ``n`` first (everything
    usually fits), then ``guess`` and its neighbour, then bisects what is left.
    """
    if n == 0 or fits(n):
        return n
    lo, hi = 0, n  # fits(lo) is known true, fits(hi) false
    guess = min(max(guess, 1), n - 1)
    if guess > lo and guess < hi:
        if fits(guess):
            lo = guess
            if guess + 1 < hi and not fits(guess + 1):
                hi = guess + 1
        else:
            hi = guess
            if guess - 1 > lo and fits(guess - 1):
                lo = guess - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _guess(base: int, full: int, costs: Sequence[int], room: int) -> int:
    """Predict how many items fit from their own token counts and the measured framing."""
    if not costs:
        return 0
    framing = max(0, full - base - sum(costs)) / len(costs)
    used, k = float(base), 0
    for cost in costs:
        used += cost + framing
        if used > room:
            break
        k += 1
    return k


class _Packer:
    """One packing run: memoised render-and-count of (history, examples, chunks) prefixes."""

    def __init__(
        self,
        render: Renderer,
        tokenizer: Tokenizer,
        history: Sequence[Message],
        examples: Sequence[Example],
        chunks: Sequence[ContextChunk],
    ) -> None:
        self.render = render
        self.tokenizer = tokenizer
        self.history = list(history)
        self.examples = list(examples)
        self.chunks = list(chunks)
        self._counts: dict[tuple[int, int, int, str | None], int] = {}

    def parts(
        self, h: int, e: int, c: int, cut: str | None = None
    ) -> tuple[list[Message], list[Example], list[ContextChunk]]:
        history = self.history[len(self.history) - h :] if h else []
        chunks = self.chunks[:c]
        if cut is not None:
            chunks = [*chunks, self.chunks[c].cut(cut)]
        return history, self.examples[:e], chunks

    def tokens(self, h: int, e: int, c: int, cut: str | None = None) -> int:
        key = (h, e, c, cut)
        if key not in self._counts:
            messages = self.render(*self.parts(h, e, c, cut))
            self._counts[key] = self.tokenizer.count_messages(messages)
        return self._counts[key]


def _too_small(window: int, reserve: int, fixed: int, question: int) -> ContextBudgetExceeded:
    budget = window - reserve
    advice = ["shorten the question"]
    if window - fixed > 0:
        advice.append(f"lower max_new_tokens to at most {window - fixed}")
    advice.append("or use a model with a larger context window")
    return ContextBudgetExceeded(
        f"the prompt does not fit the model's context window: {window} tokens minus {reserve} "
        f"reserved for the answer (max_new_tokens) leaves {max(budget, 0)}, but the system "
        f"prompt, template and question alone take {fixed} tokens ({question} of them the "
        f"question); {', '.join(advice)}.",
        {
            "window": window,
            "reserve": reserve,
            "available": budget,
            "fixed_tokens": fixed,
            "question_tokens": question,
        },
    )


def pack(
    render: Renderer,
    tokenizer: Tokenizer,
    *,
    window: int,
    max_new_tokens: int,
    question: str,
    history: Sequence[Message] = (),
    examples: Sequence[Example] = (),
    chunks: Sequence[ContextChunk] = (),
    overflow: Overflow = "truncate",
) -> PackedPrompt:
    """Fit history, examples and chunks into the window around the fixed parts.

    Args:
        render: Renders a (history, examples, chunks) selection into messages; it must show
            the question and be the exact renderer whose output is sent to the model.
        tokenizer: The model's tokenizer.
        window: The model's context length in tokens.
        max_new_tokens: Tokens reserved for the answer.
        question: The question (only to attribute its tokens in the report).
        history: Prior user/assistant messages, oldest first.
        examples: Few-shot examples, most wanted first.
        chunks: Retrieved chunks, best first.
        overflow: ``drop`` or ``truncate`` the first chunk that does not fit whole.

    Returns:
        The messages and the report; ``tokenizer.count_messages(messages) + max_new_tokens``
        is at most ``window``.

    Raises:
        InvalidRequest: ``window`` is not positive or ``max_new_tokens`` is negative.
        ContextBudgetExceeded: the fixed parts plus the reserve exceed the window.
    """
    if window <= 0:
        raise InvalidRequest(f"the context window must be positive, got {window}")
    if max_new_tokens < 0:
        raise InvalidRequest(f"max_new_tokens must not be negative, got {max_new_tokens}")
    if overflow not in ("drop", "truncate"):
        raise InvalidRequest(f"overflow is 'drop' or 'truncate', got {overflow!r}")
    room = window - max_new_tokens
    p = _Packer(render, tokenizer, history, examples, chunks)
    fixed = p.tokens(0, 0, 0)
    question_tokens = tokenizer.count(question)
    if fixed > room:
        raise _too_small(window, max_new_tokens, fixed, question_tokens)
    h = _fit_history(p, room)
    e = _fit_examples(p, room, h)
    c_costs = [tokenizer.count(x.text) for x in p.chunks]
    c = _fit_chunks(p, room, h, e, c_costs)
    cut = _cut(p, h, e, c, room, c_costs) if c < len(p.chunks) and overflow == "truncate" else None
    history_used, examples_used, used = p.parts(h, e, c, cut)
    messages = render(history_used, examples_used, used)
    report = _report(p, window, max_new_tokens, question_tokens, (h, e, c, cut), used)
    return PackedPrompt(messages=messages, report=report, chunks=used)


def _fit_history(p: _Packer, room: int) -> int:
    """How many of the newest history messages fit (never starting with an answer)."""
    count = p.tokenizer.count
    n_h = len(p.history)
    h_costs = [count(m["content"]) for m in reversed(p.history)]
    h = _largest_fitting(
        n_h,
        lambda k: p.tokens(k, 0, 0) <= room,
        _guess(p.tokens(0, 0, 0), p.tokens(n_h, 0, 0), h_costs, room) if n_h else 0,
    )
    if 0 < h < n_h and p.history[n_h - h]["role"] == "assistant":
        h -= 1  # an answer without its question would confuse the model (and some templates)
    return h


def _fit_examples(p: _Packer, room: int, h: int) -> int:
    """How many of the first examples fit beside ``h`` history messages."""
    count = p.tokenizer.count
    n_e = len(p.examples)
    e_costs = [count(x.question) + count(x.answer) for x in p.examples]
    return _largest_fitting(
        n_e,
        lambda k: p.tokens(h, k, 0) <= room,
        _guess(p.tokens(h, 0, 0), p.tokens(h, n_e, 0), e_costs, room) if n_e else 0,
    )


def _fit_chunks(p: _Packer, room: int, h: int, e: int, c_costs: Sequence[int]) -> int:
    """How many of the best chunks fit whole beside the history and examples kept."""
    n_c = len(p.chunks)
    return _largest_fitting(
        n_c,
        lambda k: p.tokens(h, e, k) <= room,
        _guess(p.tokens(h, e, 0), p.tokens(h, e, n_c), c_costs, room) if n_c else 0,
    )


def _report(
    p: _Packer,
    window: int,
    reserve: int,
    question_tokens: int,
    selection: tuple[int, int, int, str | None],
    used: Sequence[ContextChunk],
) -> BudgetReport:
    """Account for a selection ``(history, examples, chunks, cut)``; counts are memoised."""
    h, e, c, cut = selection
    fixed = p.tokens(0, 0, 0)
    with_history = p.tokens(h, 0, 0)
    with_examples = p.tokens(h, e, 0)
    total = p.tokens(h, e, c, cut)
    return BudgetReport(
        window=window,
        reserve=reserve,
        prompt_tokens=total,
        tokens_by_part={
            "system": max(fixed - question_tokens, 0),
            "examples": with_examples - with_history,
            "history": with_history - fixed,
            "context": total - with_examples,
            "question": min(question_tokens, fixed),
        },
        chunks_used=[x.id for x in used],
        chunks_dropped=[x.id for x in p.chunks[len(used) :]],
        chunks_truncated=[x.id for x in used if x.truncated],
        history_used=h,
        history_dropped=len(p.history) - h,
        examples_used=e,
        examples_dropped=len(p.examples) - e,
        tokenizer=p.tokenizer.name,
        estimated=not p.tokenizer.exact,
    )


def _cut(p: _Packer, h: int, e: int, c: int, room: int, costs: Sequence[int]) -> str | None:
    """Cut chunk ``c`` at the last sentence boundary that fits; None if no sentence does.

    The first cut comes from the chunk's own token counts and the measured framing; it is
    rendered and counted, shortened by the excess while it does not fit, then lengthened a
    sentence at a time while the next one still fits, so the cut is the longest that fits.
    """
    text = p.chunks[c].text
    base = p.tokens(h, e, c)
    framing = max(0, p.tokens(h, e, c + 1) - base - costs[c])
    limit = room - base - framing - 3  # 3: the truncated="true" attribute, checked below
    fitting: str | None = None
    for _ in range(8):
        if limit <= 0:
            return None
        cut = p.tokenizer.truncate_to_sentences(text, limit)
        if not cut.strip():
            return None
        if cut == text:
            limit = costs[c] - 1
            continue
        total = p.tokens(h, e, c, cut)
        if total <= room:
            fitting = cut
            break
        limit -= max(1, total - room)
    if fitting is None:
        return None
    longer = [text[:end].rstrip() for end in sentence_ends(text)[:-1]]
    longer = [x for x in longer if len(x) > len(fitting)]
    for candidate in longer[:16]:  # the first cut is within a few tokens; this is a bound
        if p.tokens(h, e, c, candidate) > room:
            break
        fitting = candidate
    return fitting
