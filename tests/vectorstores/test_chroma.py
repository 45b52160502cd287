"""The Chroma backend under the shared contract: embedded, and against a real Chroma server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import BackendUnavailable, ConfigurationError, InvalidRequest
from tests.vectorstores.contract import DIM, MODEL, VectorStoreContract, make_doc, rand_vectors
from vectorstores.base import VectorStoreClient
from vectorstores.chroma_store import ChromaClient


class TestEmbeddedChromaContract(VectorStoreContract):
    @pytest.fixture
    def client(self, data_dir: Path) -> Iterator[VectorStoreClient]:
        client = ChromaClient(data_dir)
        yield client
        client.close()

    def reopen(self, client: VectorStoreClient, data_dir: Path) -> VectorStoreClient:
        client.close()
        return ChromaClient(data_dir)


@pytest.mark.integration
class TestChromaServerContract(VectorStoreContract):
    @pytest.fixture
    def client(self, chroma_server: str, data_dir: Path) -> Iterator[VectorStoreClient]:
        client = ChromaClient(data_dir, url=chroma_server)
        for info in client.list_collections():  # the server outlives each test
            client.delete_collection(info.name)
        yield client
        client.close()

    def reopen(self, client: VectorStoreClient, data_dir: Path) -> VectorStoreClient:
        client.close()
        url = self._url
        return ChromaClient(data_dir, url=url)

    @pytest.fixture(autouse=True)
    def _remember_url(self, chroma_server: str) -> None:
        self._url = chroma_server


def test_documents_live_in_a_companion_collection(tmp_path: Path) -> None:
    import chromadb

    client = ChromaClient(tmp_path)
    store = client.create_collection("notes", MODEL, DIM)
    rec, chunks = make_doc("d1", 2, {"lang": "en"})
    store.replace_document(rec, chunks, rand_vectors(2))
    raw = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    names = sorted(c.name for c in raw.list_collections())
    assert names == ["notes", "notes__docs"]
    assert raw.get_collection("notes").metadata["embedding_model"] == MODEL
    assert [i.name for i in client.list_collections()] == ["notes"]


def test_reserved_metadata_keys_refused(tmp_path: Path) -> None:
    store = ChromaClient(tmp_path).create_collection("notes", MODEL, DIM)
    rec, chunks = make_doc("d1", 1, {"_rs_doc": "x"})
    with pytest.raises(InvalidRequest):
        store.replace_document(rec, chunks, rand_vectors(1))


def test_bad_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ChromaClient(tmp_path, url="ftp://host:1")


@pytest.mark.integration
def test_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnavailable):
        ChromaClient(tmp_path, url=f"http://127.0.0.1:{port}").list_collections()


def test_unknown_option_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ChromaClient(tmp_path, host="x")
