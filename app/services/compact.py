"""Compact prompts for small instruct models: fewer, better chunks, short answers, stops.

A 135M-parameter model given five long chunks and 256 tokens of room runs to the limit and
rarely cites (issue #18: 9 of 10 answers cut at 256 tokens, none cited). The compact profile
gives it what it can use:

* only the chunks that hold the best evidence sentences (``EvidenceReader``), best first,
  at most ``RAG_LLM__COMPACT_SOURCES`` of them, renumbered ``[1]``.. in that order;
* the ``short_answer`` template (plain numbered sources, one worked example, "answer in one
  or two sentences and cite [n]");
* a short answer reserve (``RAG_LLM__COMPACT_MAX_NEW_TOKENS``) and stop sequences that end
  the answer at its first blank line or when the model starts writing another question.

``auto`` uses it for the bundled SmolLM2-135M and the full prompt for any other model.
Nothing here calls a model; the answer service applies the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from app.services.evidence import Evidence

PromptProfile = Literal["auto", "compact", "full"]
COMPACT_STRATEGY = "short_answer"
COMPACT_STOPS: tuple[str, ...] = ("\n\n", "\nQuestion:", "\n[")
"""A blank line ends a one- or two-sentence answer; ``Question:`` and a new ``[n]`` line
are the model starting to write another prompt."""


def use_compact(profile: str, bundled: bool) -> bool:
    """Whether generative answers get the compact prompt.

    Args:
        profile: ``compact``, ``full`` or ``auto`` (compact for the bundled model).
        bundled: The answering model is the bundled SmolLM2-135M.
    """
    return profile == "compact" or (profile == "auto" and bundled)


def focus_order(evidence: Sequence[Evidence], available: int, limit: int) -> list[int]:
    """The chunks (1-based numbers of the full prompt) a compact prompt holds, best first.

    The chunks of the evidence sentences in the order of their best sentence, then, when
    the evidence names fewer than ``limit`` chunks, the best-ranked others.

    Args:
        evidence: Evidence sentences, best first, citing the full prompt's chunks.
        available: How many chunks the full prompt holds.
        limit: The most chunks to keep (at least 1).
    """
    order: list[int] = []
    for item in evidence:
        if item.citation not in order and 1 <= item.citation <= available:
            order.append(item.citation)
    order += [n for n in range(1, available + 1) if n not in order]
    return order[: max(1, limit)]


def renumber(evidence: Sequence[Evidence], order: Sequence[int]) -> list[Evidence]:
    """Evidence citing the compact prompt: ``order[i]`` becomes ``i + 1``; others dropped."""
    position = {old: new for new, old in enumerate(order, start=1)}
    return [
        dataclasses.replace(e, citation=position[e.citation])
        for e in evidence
        if e.citation in position
    ]
