"""The Reranker interface over a tiny cross-encoder created locally (no model can be
downloaded here, and no cross-encoder is packaged; a random-weight BERT stands in)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.types import Chunk, Hit
from retrieval.rerankers import CrossEncoderReranker, Reranker, create_reranker, rerank_hits

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "heap",
    "queue",
    "sorted",
    "list",
    "json",
    "parse",
    "the",
    "a",
    "of",
]


def make_tiny_cross_encoder(folder: Path, num_labels: int = 1) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


def test_cross_encoder_reranker_scores_pairs(tiny_model: Path) -> None:
    reranker = create_reranker(str(tiny_model))
    assert isinstance(reranker, CrossEncoderReranker)
    assert isinstance(reranker, Reranker)
    passages = ["heap queue", "json parse", "sorted list of alpha"]
    scores = reranker.score("heap", passages)
    assert len(scores) == 3
    assert all(isinstance(s, float) for s in scores)
    assert all(0.0 <= s <= 1.0 for s in scores)  # one label: sigmoid
    # Each pair is scored on its own: order and company do not change a passage's score.
    again = reranker.score("heap", list(reversed(passages)))
    assert again == pytest.approx(list(reversed(scores)), abs=1e-5)
    assert reranker.score("heap", []) == []


def test_reranking_is_off_without_a_model() -> None:
    assert create_reranker(None) is None
    assert create_reranker("  ") is None


def test_bad_models_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be loaded offline"):
        CrossEncoderReranker(tmp_path / "missing")
    two_labels = make_tiny_cross_encoder(tmp_path / "two", num_labels=2)
    with pytest.raises(ConfigurationError, match="2 output labels"):
        CrossEncoderReranker(two_labels)


def test_configured_reranker_reorders_search_results(tiny_model: Path, tmp_path: Path) -> None:
    import io

    from app.services.container import Components, build_services
    from app.settings import Settings
    from tests.fakes import HashEmbedder
    from tests.retrieval.conftest import DOCS

    settings = Settings(
        data_dir=tmp_path / "data",
        llm={"load_at_startup": False},
        retrieval={"reranker": str(tiny_model), "rerank_candidates": 4},
    )
    services = build_services(settings, Components(embedder=HashEmbedder()))
    try:
        assert isinstance(services.search.reranker, CrossEncoderReranker)
        staged = services.documents.stage(
            [(name, io.BytesIO(text.encode())) for name, text in DOCS.items()]
        )
        services.documents.ingest_staged("default", staged)
        outcome = services.search.search("default", "the heap queue", 3, mode="hybrid")
        assert outcome.reranked
        assert len(outcome.hits) == 3
        scores = [h.score for h in outcome.hits]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        plain = services.search.search("default", "the heap queue", 3, rerank=False)
        assert not plain.reranked
    finally:
        services.close()


def scored(chunk_id: str, score: float = 0.0) -> Hit:
    return Hit(Chunk(chunk_id, "doc", f"text of {chunk_id}"), score)


class LengthReranker:
    """Scores a passage by its length: a deterministic stand-in for a cross-encoder."""

    model_name = "length"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [float(len(p)) for p in passages]


def test_rerank_orders_by_the_reranker_and_reports_its_score() -> None:
    hits = [scored("a", 0.9), scored("bbb", 0.8), scored("cc", 0.7)]
    texts = [h.chunk.text for h in hits]
    out = rerank_hits(LengthReranker(), "q", hits, texts)
    assert [h.chunk.id for h in out] == ["bbb", "cc", "a"]
    assert [h.score for h in out] == [len("text of bbb"), len("text of cc"), len("text of a")]
    assert {h.kind for h in out} == {"rerank"}
    assert rerank_hits(LengthReranker(), "q", [], []) == []
