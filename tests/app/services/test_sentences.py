"""Sentence splitting for evidence: spans, abbreviations, code blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.sentences import MAX_CODE_CHARS, split_sentences


def texts(text: str) -> list[str]:
    return [text[u.start : u.end] for u in split_sentences(text)]


def test_splits_prose_after_sentence_ends() -> None:
    assert texts("Heaps are binary trees. The root is the smallest! Is it? Yes.") == [
        "Heaps are binary trees.",
        "The root is the smallest!",
        "Is it?",
        "Yes.",
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "Use a helper, e.g. Path.home() for the home folder.",
        "Use a helper, i.e. The one in os.path.",
        "Pass strings, bytes, etc. and they are converted.",
        "Written by J. Smith in 2003.",
        "See os.path.join() and Python 3.11.2 for details.",
        "Compare it with Fig. 3 of the paper.",
    ],
)
def test_abbreviations_dotted_names_and_numbers_do_not_end_a_sentence(sentence: str) -> None:
    assert texts(sentence + " Next sentence here.") == [sentence, "Next sentence here."]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert texts('He said "stop." Then it stopped. (It did.) Done.') == [
        'He said "stop."',
        "Then it stopped.",
        "(It did.)",
        "Done.",
    ]


def test_an_interpreter_session_is_one_code_unit() -> None:
    text = "For example:\n\n>>> import heapq\n>>> heapq.nsmallest(2, [3, 1, 2])\n[1, 2]\n\nDone."
    units = split_sentences(text)
    assert [text[u.start : u.end] for u in units] == [
        "For example:",
        ">>> import heapq\n>>> heapq.nsmallest(2, [3, 1, 2])\n[1, 2]",
        "Done.",
    ]
    assert [u.code for u in units] == [False, True, False]


def test_code_with_periods_is_not_split_into_sentences() -> None:
    text = "def f(x):\n    return x.strip(). upper()\n\nclass A:\n    pass"
    assert [u.code for u in split_sentences(text)] == [True, True]


def test_long_code_is_cut_at_line_boundaries() -> None:
    lines = [f">>> value_{i} = compute({i}) + other.attribute.lookup({i})" for i in range(40)]
    text = "\n".join(lines)
    units = split_sentences(text)
    assert len(units) > 1
    for unit in units:
        piece = text[unit.start : unit.end]
        assert len(piece) <= MAX_CODE_CHARS
        assert unit.start == 0 or text[unit.start - 1] == "\n"
        assert unit.end == len(text) or text[unit.end] == "\n"


def test_paragraphs_never_share_a_unit() -> None:
    assert texts("A heading\n\nA sentence without an end\n\nAnother one.") == [
        "A heading",
        "A sentence without an end",
        "Another one.",
    ]


@given(st.text(alphabet=st.sampled_from(list("ab .!?\n\t>:\"'()eg3J")), max_size=200))
def test_units_are_trimmed_ordered_disjoint_and_cover_every_visible_character(
    text: str,
) -> None:
    units = split_sentences(text)
    covered = 0
    last_end = 0
    for unit in units:
        piece = text[unit.start : unit.end]
        assert piece
        assert piece == piece.strip()
        assert unit.start >= last_end
        last_end = unit.end
        covered += sum(not c.isspace() for c in piece)
    assert covered == sum(not c.isspace() for c in text)
