"""Reading the packed chunks: evidence, a confidence, abstention and extractive answers.

``EvidenceReader.read`` picks the evidence sentences of the chunks the prompt holds
(``app.services.evidence``) and a calibrated confidence that they answer the question. Below
``abstain_below`` the answer is that the documents do not say, with the closest passages, and
no model runs; in extractive mode the answer is the top evidence sentences, each cited
``[n]``, and no model runs either. No web imports: the answer service calls this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.services.evidence import (
    Evidence,
    EvidenceWeights,
    SentenceEmbedder,
    Terms,
    evidence_confidence,
    score_units,
    term_coverage,
    with_following,
)
from llms.gguf import DEFAULT_MODEL_NAME

AnswerMode = Literal["extractive", "generative", "auto"]
ANSWER_MODES: tuple[str, ...] = ("extractive", "generative", "auto")

CONFIDENCE_WEIGHTS: tuple[float, ...] = (-2.182, 8.643, -1.611, -0.179, -8.545)
"""``(bias, dense, overlap, coverage, unknown)`` of the abstention model, fitted on the tune
split of the three corpora's dev sets and their unanswerable questions
(``bench/bench_answers_broad.py``): a question whose words the collection never uses is
the strongest sign that the documents do not answer it."""

NOT_IN_DOCUMENTS = "The documents do not say."


@dataclass(frozen=True)
class Reading:
    """What the chunks say about a question.

    Attributes:
        evidence: The best sentences, best first.
        confidence: Calibrated probability that the chunks answer the question.
        abstain: The confidence is below the server's threshold.
    """

    evidence: list[Evidence]
    confidence: float
    abstain: bool


def resolve_mode(requested: str | None, default: str, model_name: str) -> str:
    """The answer mode to use: ``extractive`` or ``generative``.

    ``auto`` means extractive when the answering model is the bundled SmolLM2-135M (too small
    to read reliably), generative otherwise.
    """
    mode = requested or default
    if mode == "auto":
        return "extractive" if model_name == DEFAULT_MODEL_NAME else "generative"
    return mode


class EvidenceReader:
    """Scores the packed chunks' sentences against a question."""

    def __init__(
        self,
        embedder: SentenceEmbedder,
        terms: Terms,
        *,
        sentences: int = 4,
        follow: str = "always",
        abstain_below: float = 0.7774,
        weights: EvidenceWeights | None = None,
        confidence_weights: Sequence[float] = CONFIDENCE_WEIGHTS,
    ) -> None:
        """Configure the reader.

        Args:
            embedder: Embeds sentences and the question.
            terms: Content words of a text (the BM25 tokenizer).
            sentences: Evidence sentences kept per answer.
            follow: Extend each over the unit after it: ``none``, ``lead`` or ``always``
                (``app.services.evidence.with_following``).
            abstain_below: Confidence under which the answer abstains; 0 never abstains.
            weights: How sentence scores combine; the tuned defaults when None.
            confidence_weights: ``(bias, dense, overlap, coverage, unknown)`` of the
                confidence.
        """
        self._embedder = embedder
        self._terms = terms
        self.sentences = sentences
        self.follow = follow
        self.abstain_below = abstain_below
        self._weights = weights or EvidenceWeights()
        self._confidence_weights = tuple(confidence_weights)

    def read(self, question: str, chunk_texts: Sequence[str], unknown: float = 0.0) -> Reading:
        """Pick the evidence for ``question`` in ``chunk_texts`` (citation order) and rate it.

        ``unknown`` is the share of the question's keywords the collection never uses.
        """
        scored = score_units(question, chunk_texts, self._embedder, self._terms, self._weights)
        ranked = sorted(scored, key=lambda e: e.score, reverse=True)
        coverage = term_coverage(question, chunk_texts, self._terms)
        confidence = evidence_confidence(scored, coverage, self._confidence_weights, unknown)
        chosen = with_following(ranked[: self.sentences], scored, chunk_texts, self.follow)
        return Reading(
            evidence=chosen,
            confidence=round(confidence, 4),
            abstain=confidence < self.abstain_below,
        )


def extractive_answer(evidence: Sequence[Evidence]) -> str:
    """The evidence sentences, best first, each followed by its citation ``[n]``."""
    return " ".join(f"{_one_line(e.text)} [{e.citation}]" for e in evidence)


def abstention_answer(evidence: Sequence[Evidence]) -> str:
    """Say the documents do not answer, and quote the closest passages with citations."""
    if not evidence:
        return f"{NOT_IN_DOCUMENTS} No passage in them is close to the question."
    closest = " ".join(f'"{_one_line(e.text)}" [{e.citation}]' for e in evidence)
    return f"{NOT_IN_DOCUMENTS} The closest passages: {closest}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
