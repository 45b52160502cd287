"""The deterministic follow-up rewrite and the model rewrite's prompt and reply parsing."""

from __future__ import annotations

import pytest

from prompts.followup import REWRITE_SYSTEM, clean_rewrite, rewrite_messages
from retrieval.followup import (
    REWRITERS,
    PriorTurn,
    content_words,
    leans_on_context,
    rewrite_followup,
)

PREVIOUS = PriorTurn(
    question="How do I read a CSV file row by row?",
    answer="Use csv.reader over the open file [1].",
    headings=["csv — CSV File Reading and Writing > Examples", "csv > Dialects"],
)


@pytest.mark.parametrize(
    ("question", "leans"),
    [
        ("And how do I write one?", True),  # continues
        ("How do I make it faster?", True),  # refers back
        ("Which platforms is the second one available on?", True),  # a position
        ("Any faster way?", True),  # too short to stand alone
        ("How do I compress a folder into a zip archive on Windows?", False),
    ],
)
def test_which_questions_lean_on_the_conversation(question: str, leans: bool) -> None:
    assert leans_on_context(question) is leans


def test_content_words_drop_function_words_and_keep_identifiers() -> None:
    assert content_words("How do I use it with json.dumps and the JSON module?") == [
        "json.dumps",
        "json",
        "module",
    ]


def test_the_rewrite_carries_the_subject_and_the_cited_section() -> None:
    query = rewrite_followup("And how do I write one?", [PREVIOUS])
    assert query.startswith("And how do I write one?")
    added = query.removeprefix("And how do I write one?").split()
    assert added == ["read", "csv", "file", "row", "examples"]


def test_a_standalone_question_or_no_history_is_left_alone() -> None:
    alone = "How do I compress a folder into a zip archive on Windows?"
    assert rewrite_followup(alone, [PREVIOUS]) == alone
    assert rewrite_followup("And how do I write one?", []) == "And how do I write one?"


def test_the_subject_is_the_previous_standalone_query_when_there_is_one() -> None:
    chained = PriorTurn(question="And the header?", query="And the header? read csv file")
    query = rewrite_followup("How do I skip it?", [PREVIOUS, chained])
    assert query == "How do I skip it? header read csv file"


def test_the_benchmark_baselines() -> None:
    assert REWRITERS["none"]("And then?", [PREVIOUS]) == "And then?"
    assert REWRITERS["concatenate"]("And then?", [PREVIOUS]) == f"{PREVIOUS.question} And then?"
    assert REWRITERS["terms_heading"] is rewrite_followup


def test_the_model_prompt_holds_the_conversation_and_the_question() -> None:
    messages = rewrite_messages("How do I skip it?", [(PREVIOUS.question, "x " * 500)])
    assert messages[0] == {"role": "system", "content": REWRITE_SYSTEM}
    user = messages[1]["content"]
    assert f"User: {PREVIOUS.question}" in user
    assert "Last question: How do I skip it?" in user
    assert len(user) < 1000  # long answers are cut


@pytest.mark.parametrize(
    ("reply", "query"),
    [
        (
            '"How do I skip the header row of a CSV file?"\n',
            "How do I skip the header row of a CSV file?",
        ),
        ("Standalone search query: skip csv header", "skip csv header"),
        ("\n\n  csv header skip  \nBecause the user...", "csv header skip"),
        ("", None),
        ("word " * 200, None),
    ],
)
def test_the_model_reply_is_cleaned_to_one_query(reply: str, query: str | None) -> None:
    assert clean_rewrite(reply) == query
