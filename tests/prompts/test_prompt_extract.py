from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompts.render import extract_final_answer

SMOL_STYLE = """To answer this, look at the sources.
Source [1] says json.loads() parses a string; source [2] is about files.
So the right function is json.loads().
Final answer: Use json.loads() to decode a JSON string [1]."""

MARKDOWN_BOLD = """**Step 1:** Source [1] covers decoding.
**Step 2:** It names `json.loads`.

**Final Answer:** Call `json.loads(text)` [1]."""

HEADING = """### Reasoning
1. The warranty is described in [2].
2. It lasts two years.

## Final answer

The warranty lasts **two years** [2].
"""

TWO_MARKERS = """I could say the final answer: maybe three years? No, [1] is outdated.
Checking [2] again, it says two years.
Final answer: Two years [2]."""


@pytest.mark.parametrize(
    ("output", "answer", "reasoning_start"),
    [
        (SMOL_STYLE, "Use json.loads() to decode a JSON string [1].", "To answer this"),
        (MARKDOWN_BOLD, "Call `json.loads(text)` [1].", "**Step 1:**"),
        (HEADING, "The warranty lasts **two years** [2].", "### Reasoning"),
        (TWO_MARKERS, "Two years [2].", "I could say"),
        ("Thinking...\nFINAL ANSWER - 42 [3]", "42 [3]", "Thinking"),
        ("reasoning\nfinal answer: lower case [1]", "lower case [1]", "reasoning"),
        ("reasoning\n**Final answer**: bold label [1]", "bold label [1]", "reasoning"),
        ("r\n__Final Answer__ — dashes", "dashes", "r"),
        ("So the final answer is Paris [1].", "Paris [1].", "So"),
        ("r\n> **Final answer:** quoted [2]", "quoted [2]", "r"),
        ("r\nFinal answer:\n- item one [1]\n- item two [2]", "- item one [1]\n- item two [2]", "r"),
        ("r\nFinal answer: **Paris** [1]", "**Paris** [1]", "r"),
        ("<think>The user asks X. Source [1] says Y.</think>\nY [1].", "Y [1].", "The user asks"),
    ],
)
def test_realistic_outputs(output: str, answer: str, reasoning_start: str) -> None:
    got_answer, reasoning = extract_final_answer(output)
    assert got_answer == answer
    assert reasoning.startswith(reasoning_start)
    assert "final answer" not in got_answer.lower()


@pytest.mark.parametrize(
    ("output", "answer", "reasoning"),
    [
        ("Just an answer with no marker [1].", "Just an answer with no marker [1].", ""),
        ("", "", ""),
        ("  \n ", "", ""),
        ("Reasoning goes on and on\nFinal answer:", "Reasoning goes on and on", ""),
        ("Reason\nFinal answer: A [1]\nFinal answer:", "A [1]", "Reason"),
        (
            "I will give the final answer after checking. It is B.",
            "I will give the final answer after checking. It is B.",
            "",
        ),
        ("The semifinal answer: not a marker", "The semifinal answer: not a marker", ""),
        ("<think>never closed, cut off mid-thought", "never closed, cut off mid-thought", ""),
    ],
)
def test_malformed_outputs(output: str, answer: str, reasoning: str) -> None:
    assert extract_final_answer(output) == (answer, reasoning)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_fails_and_loses_nothing_without_marker(text: str) -> None:
    answer, reasoning = extract_final_answer(text)
    if "final" not in text.lower() and "<think>" not in text.lower():
        assert (answer, reasoning) == (text.strip(), "")
    assert len(answer) + len(reasoning) <= len(text)


@settings(max_examples=100, deadline=None)
@given(
    reasoning=st.text(alphabet="abc xyz.[]1\n", max_size=80).filter(lambda t: "final" not in t),
    answer=st.text(alphabet="abc xyz.[]1", min_size=1, max_size=40).filter(
        lambda t: t.strip("*_ ")
    ),
    marker=st.sampled_from(
        ["Final answer:", "**Final Answer:**", "FINAL ANSWER -", "Final answer ="]
    ),
)
def test_marker_variants_roundtrip(reasoning: str, answer: str, marker: str) -> None:
    got, got_reasoning = extract_final_answer(f"{reasoning}\n{marker} {answer}")
    assert got == answer.strip()
    assert got_reasoning == reasoning.strip()
