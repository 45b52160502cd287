"""Which question words a collection knows: the abstention reader's unknown-word share.

Keyword search does not stem by default, and a question is asked in words no document needs
("when", "does"), so "the question's words the collection never uses" is counted over the
words of what is asked (not ``QUESTION_FUNCTION_WORDS``), each known in any inflection the
collection uses (``known_word``).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence

# fmt: off
QUESTION_FUNCTION_WORDS = frozenset((
    "what", "when", "where", "which", "who", "whom", "whose", "why", "how", "whether", "do",
    "does", "did", "done", "doing", "can", "could", "should", "would", "will", "shall", "may",
    "might", "must", "is", "are", "was", "were", "be", "been", "being", "am", "has", "have",
    "had", "having", "i", "me", "my", "mine", "we", "us", "our", "you", "your", "yours", "he",
    "him", "his", "she", "her", "it", "its", "they", "them", "their", "this", "that", "these",
    "those", "there", "here", "a", "an", "the", "and", "or", "but", "if", "then", "so", "than",
    "too", "very", "of", "in", "on", "at", "by", "for", "with", "from", "to", "into", "onto",
    "about", "over", "under", "between", "through", "after", "before", "during", "up", "down",
    "out", "off", "any", "some", "all", "each", "every", "no", "not", "nor", "one", "ones",
    "also", "just", "only", "even", "still", "get", "gets", "got", "make", "makes", "made", "use",
    "used", "uses", "using", "want", "wants", "need", "needs", "way", "ways",
))
# fmt: on
"""Words of how a question is asked, not of what it asks about (a small collection may never
use "when" or "does", yet answer "When does the library open?")."""

_SUFFIXES = ("ies", "es", "ed", "ing", "s", "d", "y", "e")
MIN_STEM = 4
"""Shortest stem matched as a prefix: shorter words must appear as they are."""


def unknown_share(tokens: Collection[str], vocabulary: Sequence[str]) -> float:
    """The share of the distinct asked-about ``tokens`` outside the sorted ``vocabulary``.

    Function words (``QUESTION_FUNCTION_WORDS``) are not counted; a question of nothing else
    has nothing unknown (0.0). A word is known in any inflection (``known_word``).
    """
    distinct = set(tokens) - QUESTION_FUNCTION_WORDS
    if not distinct:
        return 0.0
    known = sum(known_word(token, vocabulary) for token in distinct)
    return 1.0 - known / len(distinct)


def known_word(token: str, vocabulary: Sequence[str]) -> bool:
    """Whether ``token``, or a form of it, is in the sorted ``vocabulary``.

    Known: the token itself, or, for stems of at least ``MIN_STEM`` characters, the token
    with one common English suffix taken off (``-s``, ``-es``, ``-ed``, ``-ing``, ``-ies``,
    ``-y``, ``-e``...) being the start of a vocabulary word: ``open`` matches ``opens``,
    ``opened`` matches ``opening``, ``libraries`` matches ``library``. A light stand-in for
    stemming, used only to tell words a collection never uses from inflections it does.
    """
    index = bisect.bisect_left(vocabulary, token)
    if index < len(vocabulary) and vocabulary[index] == token:
        return True
    stems = {token} | {token[: -len(s)] for s in _SUFFIXES if token.endswith(s)}
    for stem in stems:
        if len(stem) < MIN_STEM:
            continue
        index = bisect.bisect_left(vocabulary, stem)
        if index < len(vocabulary) and vocabulary[index].startswith(stem):
            return True
    return False
