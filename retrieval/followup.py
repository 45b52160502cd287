"""Follow-up questions rewritten into standalone search queries, without a model.

A follow-up ("and how do I delete it?", "what about the second one?") leans on the
conversation before it: searched alone, its words find nothing about the subject. When a
capable model answers, the answer service asks it to rewrite the question; otherwise the
deterministic rewrite here runs. Its design was chosen on the tune half of the follow-up dev
set (``bench/eval/followups_python.jsonl``, ``bench/bench_conversations.py``): a question that
leans on context (opens like a continuation, refers back, names an item by position, or is
very short) gets the previous question's content words appended, and those of the section
heading of the passage the previous answer cited first. A question that stands on its own is
left alone. On the tune half this found the follow-up's page first for 0.52 of the pairs
(0.32 with the question's words alone, 0.36 for the raw concatenation, 0 unrewritten).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_]|[A-Za-z]")
_STOPWORDS_TEXT = """
    a about after again all also am an and any are as at be been before being both but by
    can could did do does doing don done each else even for from get gets getting give go goes
    had has have having he her here hers him his how i if in into is it its itself just let
    like make makes me might more most my myself need no nor not now of off on once one ones
    only or other our out over own please same say see she should so some such than that the
    their theirs them then there these they thing things this those through to too try under
    until up use using very want was way ways we were what whats when where which while who
    whom why will with without would you your yours instead really actually still way"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
"""Words that carry no subject: function words and the verbs every how-to question uses."""

_REFERRING_TEXT = """
    it its itself this that these those they them their one ones there such same other
    another either neither both former latter"""
REFERRING = frozenset(_REFERRING_TEXT.split())
"""Words that point back at something said before."""

CONTINUING = (
    "and ",
    "and,",
    "but ",
    "or ",
    "also ",
    "so ",
    "then ",
    "what about",
    "how about",
    "what if",
)
"""Openings that continue the previous question."""

ORDINALS: dict[str, int] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "last": -1,
}
SHORT_QUESTION_WORDS = 3
"""A question with at most this many content words leans on the conversation."""


@dataclass(frozen=True)
class PriorTurn:
    """What a follow-up may refer to: an earlier question, its answer and what it cited.

    Attributes:
        question: The question as the user asked it.
        answer: The answer text.
        headings: The heading paths of the passages the answer cited, in citation order
            (empty when unknown, as in an OpenAI-style message history).
        query: The standalone query the question was searched with (the question itself when
            it needed no rewrite).
    """

    question: str
    answer: str = ""
    headings: Sequence[str] = field(default_factory=tuple)
    query: str = ""


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry a subject, in order, without repeats (case-folded)."""
    seen: dict[str, None] = {}
    for word in WORD.findall(text):
        low = word.lower()
        if low not in STOPWORDS and low not in REFERRING and low not in ORDINALS:
            seen.setdefault(low, None)
    return list(seen)


def ordinal_of(question: str) -> int | None:
    """The position a question names ("the second one" is 2, "the last one" is -1), or None."""
    for word in WORD.findall(question.lower()):
        if word in ORDINALS:
            return ORDINALS[word]
    return None


def leans_on_context(question: str) -> bool:
    """Whether a question needs the conversation to be understood.

    True when it opens like a continuation ("and ...", "what about ..."), refers back ("it",
    "them", "that"), names an item by position ("the second one"), or has at most
    ``SHORT_QUESTION_WORDS`` content words.
    """
    low = " ".join(question.lower().split())
    if low.startswith(CONTINUING):
        return True
    words = {w.lower() for w in WORD.findall(low)}
    if words & REFERRING or ordinal_of(low) is not None:
        return True
    return len(content_words(low)) <= SHORT_QUESTION_WORDS


def _subject_of(turn: PriorTurn) -> str:
    """The previous turn's subject: its standalone query, or its question."""
    return turn.query or turn.question


def _append_new(question: str, words: Sequence[str]) -> str:
    have = {w.lower() for w in WORD.findall(question)}
    extra = [w for w in words if w not in have]
    return f"{question} {' '.join(extra)}" if extra else question


def rewrite_unchanged(question: str, history: Sequence[PriorTurn]) -> str:
    """No rewrite: the question alone (the baseline without conversation context)."""
    return question


def rewrite_concatenated(question: str, history: Sequence[PriorTurn]) -> str:
    """The raw baseline: the previous question and the follow-up, joined."""
    if not history:
        return question
    return f"{history[-1].question} {question}"


def rewrite_with_terms(question: str, history: Sequence[PriorTurn]) -> str:
    """Append the previous subject's content words when the question leans on context."""
    if not history or not leans_on_context(question):
        return question
    return _append_new(question, content_words(_subject_of(history[-1])))


def rewrite_with_terms_always(question: str, history: Sequence[PriorTurn]) -> str:
    """Append the previous subject's content words to every follow-up."""
    if not history:
        return question
    return _append_new(question, content_words(_subject_of(history[-1])))


def rewrite_followup(question: str, history: Sequence[PriorTurn]) -> str:
    """The shipped deterministic rewrite (``terms_heading``; see the module docstring).

    A question that leans on context gets the previous subject's content words and those of
    the last heading of the passage the previous answer cited first (its section title).

    Args:
        question: The follow-up as the user asked it.
        history: The earlier turns, oldest first.

    Returns:
        A standalone search query; ``question`` itself when it needs no context.
    """
    if not history or not leans_on_context(question):
        return question
    last = history[-1]
    heading = last.headings[0].split(" > ")[-1] if last.headings else ""
    return _append_new(question, content_words(f"{_subject_of(last)} {heading}"))


Rewriter = Callable[[str, Sequence[PriorTurn]], str]
REWRITERS: dict[str, Rewriter] = {
    "none": rewrite_unchanged,
    "concatenate": rewrite_concatenated,
    "terms": rewrite_with_terms,
    "terms_always": rewrite_with_terms_always,
    "terms_heading": rewrite_followup,
}
"""The designs the benchmark compares; ``terms_heading`` (``rewrite_followup``) is shipped."""
