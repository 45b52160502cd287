"""Evidence: the sentences of the packed chunks that best answer a question.

Each chunk the prompt holds is split into sentences and code blocks
(``app.services.sentences``); every unit is scored against the question by

* the embedding model (cosine of the question's vector and the unit's; all units of an
  answer are embedded in one batch),
* term overlap: the share of the question's IDF weight whose terms the unit holds, IDF
  counted over the candidate units (a question word found in few of them weighs most),
* the retrieval rank of its chunk (a small prior: the first chunk is the likeliest page),
* context: part of the best overlap of the unit just before it in the same paragraph run
  (a definition's signature line names what the next sentence explains).

The weights were chosen on the tune split of #24's three corpora (Python docs, Debian
Reference, PostgreSQL; ``bench/bench_answers_broad.py``): the cosine with a little term
overlap and context did best, the rank prior added nothing (weight 0; it stays available),
and term coverage feeds the abstention confidence. Nothing here imports the web layer, the
stores or the model code: callers pass the embedder and the keyword tokenizer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from app.services.sentences import Unit, split_sentences

__all__ = [
    "Evidence",
    "EvidenceWeights",
    "SentenceEmbedder",
    "Terms",
    "combined_score",
    "evidence_confidence",
    "rescore",
    "select_evidence",
    "with_following",
]

Terms = Callable[[str], list[str]]
"""Splits text into lower-cased content words (the BM25 tokenizer fits)."""


class SentenceEmbedder(Protocol):
    """What evidence needs of an embedder: unit-length vectors for texts and a query."""

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts; shape ``(len(texts), dimension)``, unit rows."""

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed a query; shape ``(dimension,)``, unit length."""


@dataclass(frozen=True)
class EvidenceWeights:
    """How a unit's score is made (defaults chosen on the dev set's tune half).

    Attributes:
        dense: Weight of the embedding cosine.
        overlap: Weight of the IDF-weighted share of question terms the unit holds.
        rank: Weight of the chunk's retrieval-rank prior, ``1 / rank``.
        context: Share of the previous unit's overlap added to a unit's own.
        min_chars: Units shorter than this (headings, stray words) are not evidence.
    """

    dense: float = 0.25
    overlap: float = 0.1
    rank: float = 0.0
    context: float = 0.3
    min_chars: int = 1


NAIVE_WEIGHTS = EvidenceWeights(dense=1.0, overlap=0.0, rank=0.0, context=0.0, min_chars=1)
"""The baseline: the embedding cosine alone."""


@dataclass(frozen=True)
class Evidence:
    """A sentence that supports the answer: ``chunk_text[start:end] == text``.

    Attributes:
        citation: The chunk's number in the prompt (1-based, as ``[n]`` cites it).
        start: Offset of the sentence in the chunk's text.
        end: Offset just past it.
        text: The sentence.
        score: Its combined score (higher is better).
        dense: The embedding cosine with the question.
        overlap: The IDF-weighted share of question terms it holds.
        context: The share of question terms held only by the unit before it.
    """

    citation: int
    start: int
    end: int
    text: str
    score: float
    dense: float
    overlap: float
    context: float = 0.0


def combined_score(evidence: Evidence, weights: EvidenceWeights) -> float:
    """A unit's score from its parts: cosine, overlap with context, and the rank prior."""
    return (
        weights.dense * evidence.dense
        + weights.overlap * (evidence.overlap + weights.context * evidence.context)
        + weights.rank / evidence.citation
    )


def rescore(scored: Sequence[Evidence], weights: EvidenceWeights) -> list[Evidence]:
    """Score units again under other weights (units shorter than ``min_chars`` dropped)."""
    return [
        dataclasses.replace(e, score=round(combined_score(e, weights), 4))
        for e in scored
        if len(e.text) >= weights.min_chars
    ]


@dataclass(frozen=True)
class _Candidate:
    citation: int
    unit: Unit
    text: str
    terms: frozenset[str]
    before: frozenset[str]


def select_evidence(
    question: str,
    chunk_texts: Sequence[str],
    embedder: SentenceEmbedder,
    terms: Terms,
    *,
    limit: int = 3,
    weights: EvidenceWeights | None = None,
) -> list[Evidence]:
    """Return the ``limit`` units of ``chunk_texts`` that best answer ``question``, best first.

    Args:
        question: The question.
        chunk_texts: The prompt's chunks in citation order (``[1]`` first).
        embedder: Embeds the units (one batch) and the question.
        terms: Content words of a text, lower-cased.
        limit: How many units to return (fewer when the chunks hold fewer).
        weights: How scores combine; the tuned defaults when None.

    Returns:
        Evidence with spans into its chunk's text; duplicate sentences (chunks overlap)
        are kept once, under the better-ranked chunk.
    """
    scored = score_units(question, chunk_texts, embedder, terms, weights or EvidenceWeights())
    return sorted(scored, key=lambda e: e.score, reverse=True)[: max(0, limit)]


def score_units(
    question: str,
    chunk_texts: Sequence[str],
    embedder: SentenceEmbedder,
    terms: Terms,
    weights: EvidenceWeights,
) -> list[Evidence]:
    """Score every unit of ``chunk_texts`` (in text order); see ``select_evidence``."""
    candidates = _candidates(chunk_texts, terms, weights.min_chars)
    if not candidates:
        return []
    query_terms = set(terms(question))
    idf = _idf(query_terms, [c.terms for c in candidates])
    total = sum(idf.values()) or 1.0

    def share(words: frozenset[str]) -> float:
        return sum(idf[t] for t in words & query_terms) / total

    overlaps = [share(c.terms) for c in candidates]
    dense = _cosines(question, [c.text for c in candidates], embedder)
    out = [
        Evidence(
            citation=candidate.citation,
            start=candidate.unit.start,
            end=candidate.unit.end,
            text=candidate.text,
            score=0.0,
            dense=round(dense[i], 4),
            overlap=round(overlaps[i], 4),
            context=round(share(candidate.before - candidate.terms), 4),
        )
        for i, candidate in enumerate(candidates)
    ]
    return rescore(out, weights)


def evidence_confidence(
    scored: Sequence[Evidence], coverage: float, weights: Sequence[float], unknown: float = 0.0
) -> float:
    """A calibrated probability that the chunks answer the question.

    A logistic model over the best unit cosine, the best unit overlap, ``coverage`` (the
    share of question terms found anywhere in the chunks) and ``unknown`` (the share of
    question terms the whole collection never uses), with ``weights`` =
    ``(bias, dense, overlap, coverage[, unknown])`` fitted on the dev set's tune half.
    """
    if not scored:
        return 0.0
    bias, w_dense, w_overlap, w_coverage, *rest = weights
    w_unknown = rest[0] if rest else 0.0
    best_dense = max(e.dense for e in scored)
    best_overlap = max(e.overlap for e in scored)
    z = (
        bias
        + w_dense * best_dense
        + w_overlap * best_overlap
        + w_coverage * coverage
        + w_unknown * unknown
    )
    return 1.0 / (1.0 + math.exp(-z))


def term_coverage(question: str, chunk_texts: Sequence[str], terms: Terms) -> float:
    """The share of the question's distinct content words found in any of the chunks."""
    wanted = set(terms(question))
    if not wanted:
        return 0.0
    present: set[str] = set()
    for text in chunk_texts:
        present.update(wanted.intersection(terms(text)))
    return len(present) / len(wanted)


def _candidates(chunk_texts: Sequence[str], terms: Terms, min_chars: int) -> list[_Candidate]:
    """Units worth scoring, each with the words of the unit just before it in its chunk."""
    seen: set[str] = set()
    candidates: list[_Candidate] = []
    for number, text in enumerate(chunk_texts, 1):
        before: frozenset[str] = frozenset()
        for unit in split_sentences(text):
            sentence = text[unit.start : unit.end]
            words = frozenset(terms(sentence))
            key = " ".join(sentence.split()).casefold()
            if len(sentence) >= min_chars and key not in seen:
                seen.add(key)
                candidates.append(_Candidate(number, unit, sentence, words, before))
            before = words
    return candidates


def _idf(query_terms: set[str], documents: Sequence[frozenset[str]]) -> dict[str, float]:
    n = len(documents)
    out: dict[str, float] = {}
    for term in query_terms:
        df = sum(term in doc for doc in documents)
        out[term] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    return out


def _cosines(question: str, texts: Sequence[str], embedder: SentenceEmbedder) -> list[float]:
    vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    query = np.asarray(embedder.embed_query(question), dtype=np.float32)
    return [float(x) for x in vectors @ query]


FOLLOW_RULES: tuple[str, ...] = ("none", "lead", "always")
LEAD_CHARS = 80
"""A sentence shorter than this is a lead-in: a signature line or a heading-like phrase."""


def with_following(
    chosen: Sequence[Evidence], units: Sequence[Evidence], chunk_texts: Sequence[str], rule: str
) -> list[Evidence]:
    """Extend chosen sentences over the unit that follows them in their chunk.

    An answer often spans two units: a definition's signature line and the sentence
    explaining it, or a sentence ending in ``:`` and the list or code after it.

    Args:
        chosen: The selected sentences, best first.
        units: Every scored unit of the chunks, in text order (``score_units``).
        chunk_texts: The chunks, so the extended span's text is exact.
        rule: ``none``; ``lead`` (extend a sentence ending in ``:`` or shorter than
            ``LEAD_CHARS``); ``always``.

    Returns:
        The chosen evidence, each possibly spanning the next unit too
        (``chunk_text[start:end] == text`` still holds).
    """
    if rule == "none":
        return list(chosen)
    taken = {(e.citation, e.start) for e in chosen}
    following: dict[tuple[int, int], Evidence] = {}
    for before, after in zip(units, units[1:], strict=False):
        if before.citation == after.citation and after.start >= before.end:
            following[(before.citation, before.start)] = after
    out: list[Evidence] = []
    for e in chosen:
        nxt = following.get((e.citation, e.start))
        lead = e.text.rstrip().endswith(":") or len(e.text) < LEAD_CHARS
        if nxt is None or (nxt.citation, nxt.start) in taken or (rule == "lead" and not lead):
            out.append(e)
            continue
        text = chunk_texts[e.citation - 1][e.start : nxt.end]
        out.append(dataclasses.replace(e, end=nxt.end, text=text))
    return out
