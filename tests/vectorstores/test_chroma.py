"""The Chroma backend under the shared contract: embedded, and against a real Chroma server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import BackendUnavailable, ConfigurationError, InvalidRequest
from core.types import Chunk, DocumentRecord
from tests.app.test_delete_leaves_no_text import SECRET, files_holding
from tests.vectorstores.contract import (
    DIM,
    MODEL,
    VectorStoreContract,
    basis,
    make_doc,
    rand_vectors,
)
from vectorstores.base import VectorStoreClient
from vectorstores.chroma_content import TEXT_FILE, TEXT_STORE, InChroma, string_digest
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


def secret_doc(doc_id: str) -> tuple[DocumentRecord, list[Chunk]]:
    record = DocumentRecord(doc_id, f"{SECRET}.md", "h", 2, {"lang": "en", "title": SECRET})
    chunks = [
        Chunk(
            f"{doc_id}:0", doc_id, f"the word is {SECRET}", {"heading_path": SECRET, "position": 0}
        ),
        Chunk(f"{doc_id}:1", doc_id, "nothing here", {"heading_path": "Intro", "position": 1}),
    ]
    return record, chunks


def test_embedded_chroma_never_holds_text_or_string_values(tmp_path: Path) -> None:
    client = ChromaClient(tmp_path)
    store = client.create_collection("notes", MODEL, DIM)
    record, chunks = secret_doc("d1")
    store.replace_document(record, chunks, rand_vectors(2))
    # Chroma's own database (its write-ahead log included) never sees the text or the heading.
    holding = files_holding(tmp_path, SECRET)
    assert holding
    assert all(name.startswith(f"chroma/{TEXT_FILE}") for name in holding), holding  # or -wal
    assert store.get_chunks("d1") == chunks  # read back from the side file
    assert store.get_document("d1") == store.list_documents({"source": f"{SECRET}.md"})[0]
    assert store.list_documents({"title": {"$ne": SECRET}}) == []
    assert store.count_documents({"title": {"$in": [SECRET, "x"]}}) == 1
    hits = store.search(rand_vectors(2)[0], top_k=5, filter={"heading_path": SECRET})
    assert [h.chunk.id for h in hits] == ["d1:0"]
    assert [h.chunk.id for h in store.search(basis(0), 5, {"heading_path": {"$ne": SECRET}})] == [
        "d1:1"
    ]
    assert (
        store.search(basis(0), 5, {"heading_path": {"$in": ["Intro", "x"]}})[0].chunk.id == "d1:1"
    )

    assert store.delete_document("d1") is True
    assert files_holding(tmp_path, SECRET) == []
    client.close()


def test_deleting_a_collection_removes_its_text(tmp_path: Path) -> None:
    client = ChromaClient(tmp_path)
    store = client.create_collection("notes", MODEL, DIM)
    store.replace_document(*secret_doc("d1"), rand_vectors(2))
    kept = client.create_collection("other", MODEL, DIM)
    kept.replace_document(*make_doc("k1", 2), rand_vectors(2))
    assert files_holding(tmp_path, SECRET)
    assert client.delete_collection("notes") is True
    assert files_holding(tmp_path, SECRET) == []
    assert [c.text for c in kept.get_chunks("k1")] == ["k1 text 0", "k1 text 1"]
    client.close()


def test_collection_of_the_old_layout_is_moved_out_of_chroma(tmp_path: Path) -> None:
    """A collection written before the text moved (text in Chroma) is adopted on open."""
    import chromadb

    raw = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    old = raw.create_collection(
        "notes",
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"embedding_model": MODEL, "dimension": DIM, "created": 1.0},
        embedding_function=None,
    )
    record, chunks = secret_doc("d1")
    old.add(
        ids=[c.id for c in chunks], embeddings=rand_vectors(2), **InChroma().prepare("", chunks)
    )
    raw.create_collection("notes__docs", embedding_function=None).add(
        ids=["d1"], embeddings=[[1.0]], metadatas=[InChroma().put_record("", record)]
    )
    assert raw.get_collection("notes").get(ids=["d1:0"])["documents"] == [f"the word is {SECRET}"]

    for _ in range(2):  # the second open finds it moved (and a re-run of the move is harmless)
        client = ChromaClient(tmp_path)
        store = client.get_collection("notes")
        assert store.get_chunks("d1") == chunks
        assert [h.chunk.id for h in store.search(basis(0), 5, {"heading_path": SECRET})] == ["d1:0"]
        moved = raw.get_collection("notes")
        assert moved.metadata[TEXT_STORE] == "ragserver"
        got = moved.get(ids=["d1:0"], include=["documents", "metadatas"])
        assert got["documents"] == [""]
        assert got["metadatas"][0]["heading_path"] == string_digest(SECRET)
        assert store.list_documents({"title": SECRET}) == [record]
        (entry,) = raw.get_collection("notes__docs").get(ids=["d1"])["metadatas"]
        assert entry == {
            "lang": string_digest("en"),
            "title": string_digest(SECRET),
            "source": string_digest(f"{SECRET}.md"),
            "document_id": string_digest("d1"),
        }
        client.close()
        moved.modify(metadata={k: v for k, v in moved.metadata.items() if k != TEXT_STORE})


def test_concurrent_writers_and_readers_keep_text_and_chroma_in_step(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = ChromaClient(tmp_path)
    store = client.create_collection("notes", MODEL, DIM)

    def work(worker: int) -> None:
        for round_ in range(5):
            doc = f"w{worker}"
            record, chunks = make_doc(doc, 3, {"round": round_})
            store.replace_document(record, chunks, rand_vectors(3, seed=worker * 10 + round_))
            hits = store.search(basis(worker), 50)
            assert all(h.chunk.text.startswith(f"{h.chunk.document_id} text") for h in hits)
            assert [c.metadata["round"] for c in store.get_chunks(doc)] == [round_] * 3
        store.delete_document(f"w{worker}" if worker % 2 else "none")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    kept = sorted(r.id for r in store.list_documents())
    assert kept == ["w0", "w2", "w4", "w6"]
    assert store.count() == 12
    assert all(c.text.startswith(c.document_id) for c in store.all_chunks())
    assert files_holding(tmp_path, "w1 text") == []
    client.close()
