"""Evidence selection, extractive answers and abstention (fake embedder; real model marked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.services.evidence import EvidenceWeights, select_evidence
from app.services.reader import (
    NOT_IN_DOCUMENTS,
    EvidenceReader,
    abstention_answer,
    extractive_answer,
    resolve_mode,
)
from retrieval.bm25 import KeywordTokenizer
from tests.fakes import HashEmbedder

CHUNKS = [
    "The archive opens at 9 am. The vault code is 7421, e.g. for the north door.\n\n"
    ">>> open_vault(7421)\nTrue",
    "Tomatoes need six hours of sun. Water them in the morning. The vault code is 7421, e.g. "
    "for the north door.",
]
TERMS = KeywordTokenizer(stopwords=True)


def test_spans_point_into_the_cited_chunk() -> None:
    evidence = select_evidence("What is the vault code?", CHUNKS, HashEmbedder(), TERMS, limit=10)
    assert evidence
    for e in evidence:
        assert CHUNKS[e.citation - 1][e.start : e.end] == e.text
    assert evidence[0].text == "The vault code is 7421, e.g. for the north door."
    assert evidence[0].citation == 1


def test_a_sentence_repeated_by_overlapping_chunks_is_kept_once_under_the_first() -> None:
    evidence = select_evidence("vault code north door", CHUNKS, HashEmbedder(), TERMS, limit=20)
    repeated = [e for e in evidence if e.text.startswith("The vault code")]
    assert [e.citation for e in repeated] == [1]


def test_scores_are_sorted_and_limit_is_kept() -> None:
    evidence = select_evidence("When does the archive open?", CHUNKS, HashEmbedder(), TERMS)
    assert len(evidence) == 3
    assert [e.score for e in evidence] == sorted((e.score for e in evidence), reverse=True)
    assert "The archive opens at 9 am." in [e.text for e in evidence]


def test_term_overlap_outranks_a_closer_embedding_when_weighted() -> None:
    chunks = ["Sunlight matters for plants in the garden.", "Use heappushpop for speed."]
    question = "when should I use heappushpop"
    only_terms = EvidenceWeights(dense=0.0, overlap=1.0, rank=0.0, context=0.0)
    best = select_evidence(question, chunks, HashEmbedder(), TERMS, limit=1, weights=only_terms)
    assert best[0].text == "Use heappushpop for speed."
    assert best[0].overlap > 0.0
    assert best[0].dense < 1.0


def test_extractive_answer_cites_every_sentence() -> None:
    evidence = select_evidence("What is the vault code?", CHUNKS, HashEmbedder(), TERMS)
    answer = extractive_answer(evidence)
    pieces = re.findall(r"(.+?) \[(\d+)\](?: |$)", answer)
    assert len(pieces) == len(evidence)
    for (text, number), e in zip(pieces, evidence, strict=True):
        assert text == " ".join(e.text.split())
        assert int(number) == e.citation


def test_abstention_says_so_and_quotes_the_closest_passages() -> None:
    evidence = select_evidence("What is the vault code?", CHUNKS, HashEmbedder(), TERMS, limit=2)
    answer = abstention_answer(evidence)
    assert answer.startswith(NOT_IN_DOCUMENTS)
    for e in evidence:
        assert f"[{e.citation}]" in answer
        assert " ".join(e.text.split()) in answer
    assert abstention_answer([]).startswith(NOT_IN_DOCUMENTS)


def test_auto_mode_is_extractive_only_for_the_bundled_small_model() -> None:
    assert resolve_mode("auto", "generative", "SmolLM2-135M-Instruct") == "extractive"
    assert resolve_mode("auto", "generative", "gpt-4o-mini") == "generative"
    assert resolve_mode(None, "auto", "SmolLM2-135M-Instruct") == "extractive"
    assert resolve_mode(None, "extractive", "gpt-4o-mini") == "extractive"
    assert resolve_mode("generative", "extractive", "SmolLM2-135M-Instruct") == "generative"


def test_reader_without_chunks_abstains() -> None:
    reading = EvidenceReader(HashEmbedder(), TERMS).read("anything at all?", [])
    assert reading.evidence == []
    assert reading.confidence == 0.0
    assert reading.abstain


DOC_ROOT = Path("/usr/share/doc/python3.11/html")
PAGES = ["library/heapq.html", "library/json.html", "tutorial/datastructures.html"]


@pytest.fixture(scope="module")
def real_chunks() -> dict[str, list[str]]:
    """The chunks of a few real Python doc pages, as ragserver ingests them."""
    from ingest.embedders import create_embedder  # noqa: F401  (the real model is used below)
    from ingest.limits import LoadLimits
    from ingest.loaders import load_file

    if not (DOC_ROOT / PAGES[0]).is_file():
        pytest.skip(reason="the python3.11-doc package is not installed (scripts/system_deps.sh)")
    out: dict[str, list[str]] = {}
    for source in PAGES:
        document = load_file(DOC_ROOT / source, source, LoadLimits())
        out[source] = [s.text for s in document.sections if s.text.strip()]
    return out


@pytest.mark.integration
def test_real_model_answers_a_docs_question_and_abstains_on_an_unrelated_one(
    real_chunks: dict[str, list[str]],
) -> None:
    from app.settings import LLMSettings
    from ingest.embedders import create_embedder

    embedder = create_embedder("all-MiniLM-L6-v2", query_backend="same")
    shipped = LLMSettings.model_fields["abstain_below"].default
    reader = EvidenceReader(embedder, TERMS, abstain_below=shipped)
    heap = [t for t in real_chunks["library/heapq.html"] if "heappushpop" in t][:3]
    answered = reader.read("Which heapq function pushes an item and then pops the smallest?", heap)
    assert not answered.abstain, answered
    # heappushpop's own sentence (its name is on the signature line before it).
    assert answered.evidence[0].text.startswith("Push item on the heap, then pop and return")
    unrelated = reader.read("How do I bake a sourdough bread with a crispy crust?", heap)
    assert unrelated.abstain, unrelated
    assert unrelated.confidence < answered.confidence


def test_following_extends_a_sentence_over_the_next_unit_of_its_chunk() -> None:
    from app.services.evidence import score_units, with_following

    chunks = ["Use the flag:\n\n>>> run(fast=True)\n\nIt is quick.", "Other text here."]
    units = score_units("flag", chunks, HashEmbedder(), TERMS, EvidenceWeights())
    first = next(u for u in units if u.text == "Use the flag:")
    for rule in ("lead", "always"):
        (extended,) = with_following([first], units, chunks, rule)
        assert extended.text == "Use the flag:\n\n>>> run(fast=True)"
        assert chunks[0][extended.start : extended.end] == extended.text
    assert with_following([first], units, chunks, "none") == [first]
    last = next(u for u in units if u.text == "Other text here.")
    assert with_following([last], units, chunks, "always") == [last]  # nothing follows it
    long = next(u for u in units if u.text == "It is quick.")
    code = next(u for u in units if u.text.startswith(">>>"))
    # A unit already chosen is not swallowed by the one before it.
    assert with_following([code, long], units, chunks, "always")[1] == long
    assert with_following([first, code], units, chunks, "always")[0] == first


def test_a_question_of_unknown_words_lowers_the_confidence() -> None:
    from app.services.evidence import evidence_confidence, score_units

    units = score_units("vault code", CHUNKS, HashEmbedder(), TERMS, EvidenceWeights())
    weights = (0.0, 1.0, 0.0, 0.0, -8.0)
    known = evidence_confidence(units, 1.0, weights, unknown=0.0)
    assert evidence_confidence(units, 1.0, weights, unknown=0.5) < known
    assert evidence_confidence(units, 1.0, weights[:4], unknown=0.5) == known
