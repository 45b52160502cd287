"""The collection service refuses a collection of another embedding model the one way."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.collections import CollectionService
from core.errors import EmbeddingMismatch
from tests.fakes import HashEmbedder
from vectorstores.registry import create_client


def test_a_collection_of_another_model_is_an_embedding_mismatch(tmp_path: Path) -> None:
    client = create_client("faiss", tmp_path)
    client.create_collection("old", "other-model", 64)
    client.close()
    service = CollectionService(create_client("faiss", tmp_path), HashEmbedder(64))
    with pytest.raises(EmbeddingMismatch, match="other-model") as refused:
        service.get("old")
    assert refused.value.detail["requested_model"] == "hash-64"
    service.close()
