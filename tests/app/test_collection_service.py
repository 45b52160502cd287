"""The collection service and readiness report what the embedder says, one way each."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.collections import CollectionService
from app.settings import Settings
from core.errors import EmbeddingMismatch
from tests.app.conftest import running_app
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


class BackendEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.backend_info = {"backend": "float32", "query_backend": "onnx-float32"}


def test_readyz_reports_the_embedders_backends_through_the_metrics_wrapper(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with running_app(settings, BackendEmbedder()) as client:
        body = client.get("/readyz").json()
    assert body["detail"] == {"embedding": {"backend": "float32", "query_backend": "onnx-float32"}}
