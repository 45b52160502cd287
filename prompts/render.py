"""The public entry points: ``build_prompt`` and ``extract_final_answer``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from core.errors import InvalidRequest
from core.types import Chunk, Hit
from llms.base import Message
from prompts.budget import Overflow, PackedPrompt, pack
from prompts.templates import TemplateRegistry
from prompts.tokenizers import Tokenizer
from prompts.types import ContextChunk, Example, parse_history


def build_prompt(
    question: str,
    hits: Sequence[Hit | Chunk | ContextChunk],
    *,
    tokenizer: Tokenizer,
    window: int,
    max_new_tokens: int,
    registry: TemplateRegistry,
    strategy: str | None = None,
    history: Sequence[Message | Mapping[str, Any]] = (),
    examples: Sequence[Example | Mapping[str, Any]] | None = None,
    role: str | None = None,
    params: Mapping[str, str] | None = None,
    overflow: Overflow = "truncate",
) -> PackedPrompt:
    """Render a strategy's template and fit it to the model's context window.

    Args:
        question: The user's question; never cut.
        hits: Retrieved chunks, best first; cited as [1], [2], ... in this order.
        tokenizer: The answering model's tokenizer (see ``prompts.tokenizers.tokenizer_for``).
        window: The model's context length in tokens.
        max_new_tokens: Tokens reserved for the answer.
        registry: The prompt templates.
        strategy: Template name (``zero_shot``, ``one_shot``, ``few_shot``,
            ``chain_of_thought`` or a user's); None for the registry's default.
        history: Prior chat turns, oldest first, each ``{"role": "user"|"assistant",
            "content": ...}``.
        examples: Few-shot examples ``{"question", "answer"}``; None uses the configured
            examples file. Only templates that show examples use them.
        role: Who the assistant is, e.g. "a support engineer for Acme".
        params: Values for the template's declared parameters.
        overflow: The first chunk that does not fit is ``drop``-ped or ``truncate``-d at a
            sentence boundary.

    Returns:
        The messages and a ``BudgetReport``; ``tokenizer.count_messages(messages) +
        max_new_tokens <= window``.

    Raises:
        InvalidRequest: empty question, bad history, example or parameter.
        TemplateNotFound: unknown strategy.
        ContextBudgetExceeded: the system prompt, template and question alone do not fit.
    """
    if not question.strip():
        raise InvalidRequest("the question is empty")
    template = registry.get(strategy)
    turns = parse_history(history)
    chosen = registry.examples_for(template.name, examples)
    chunks = [ContextChunk.from_hit(h) for h in hits]
    # Validate parameters once up front, so a bad request fails before any counting.
    template.render(question, role=role, params=params)

    def render(
        kept_history: Sequence[Message],
        kept_examples: Sequence[Example],
        kept_chunks: Sequence[ContextChunk],
    ) -> list[Message]:
        return template.render(
            question, kept_chunks, kept_examples, kept_history, role=role, params=params
        )

    packed = pack(
        render,
        tokenizer,
        window=window,
        max_new_tokens=max_new_tokens,
        question=question,
        history=turns,
        examples=chosen,
        chunks=chunks,
        overflow=overflow,
    )
    return replace(packed, template=template.name, reasoning=template.info.reasoning)


# "Final answer" with optional markdown around it, then a separator (":", "-", "=", "is").
_INLINE_MARKER = re.compile(
    r"(?P<open>\*\*|__|\*|_)?(?:(?<![a-z])(?:the|my|our)[ \t]+)?"
    r"(?<![a-z])final[ \t_]+answer(?![a-z])[ \t]*(?P=open)?[ \t]*"
    r"(?:[:：=\-–—]|\bis(?![a-z'’])[ \t]*:?)[ \t]*(?(open)(?P=open)?)",
    re.IGNORECASE,
)
# "Final answer" alone on its line: a markdown heading or a bold label above the answer.
_LINE_MARKER = re.compile(
    r"^[ \t>#*_]*final[ \t_]+answer[ \t]*[*_]*[ \t]*[:：]?[ \t]*[*_]*[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_LEFTOVER = re.compile(r"^[\s*_>#:]+|[\s*_]+$")


def _clean_answer(text: str) -> str:
    text = text.strip()
    # A bold answer ("**Paris [1]**") loses the markup that only wrapped the marker's line.
    if text.startswith("**") and text.count("**") == 1:
        text = text[2:]
    if text.endswith("**") and text.count("**") == 1:
        text = text[:-2]
    return text.strip()


def extract_final_answer(text: str) -> tuple[str, str]:
    """Split a chain-of-thought output into ``(answer, reasoning)``.

    The answer is what follows the *last* "final answer" marker; accepted forms include
    ``Final answer:``, ``**Final Answer:**``, ``**Final answer**: ...``, ``FINAL ANSWER -``,
    ``The final answer is ...`` and a ``## Final answer`` heading or bold label on a line of
    its own. A marker followed by nothing (output cut off) is ignored and an earlier one is
    used. A ``<think>...</think>``
    block counts as reasoning. Without any marker the whole text is the answer and the
    reasoning is empty.

    Args:
        text: The model's output.

    Returns:
        ``(answer, reasoning)``, both stripped.
    """
    thought = ""
    think = _THINK.search(text)
    if think:
        thought = think.group(1).strip()
        text = (text[: think.start()] + text[think.end() :]).strip()
        if not text:  # the model never closed its thinking: keep it as the answer
            return thought, ""

    markers = sorted(
        [(m.start(), m.end()) for m in _INLINE_MARKER.finditer(text)]
        + [(m.start(), m.end()) for m in _LINE_MARKER.finditer(text)],
        reverse=True,
    )
    stop = len(text)
    for start, end in markers:
        if start >= stop:
            continue  # the same marker matched by both patterns
        answer = _clean_answer(text[end:stop])
        if _LEFTOVER.sub("", answer):
            reasoning = text[:start].strip().rstrip("#*_> \t").rstrip()
            return answer, "\n\n".join(x for x in (thought, reasoning) if x)
        stop = start  # a marker with nothing after it (the output was cut off): skip it
    if stop == len(text):
        return text.strip(), thought
    answer = text[:stop].strip().rstrip("#*_> \t").rstrip()  # without the dangling marker
    return answer or text.strip(), thought
