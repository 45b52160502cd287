"""The BM25 keyword index: tokenizing, ranking, filters, persistence, staleness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from ingest.chunking import document_id_for
from retrieval.bm25 import (
    CURRENT_FILE,
    BM25Index,
    KeywordIndex,
    KeywordTokenizer,
    store_stamp,
)
from retrieval.vocabulary import known_word
from tests.fakes import HashEmbedder
from tests.retrieval.conftest import add_document
from vectorstores.faiss_client import FaissClient
from vectorstores.memory import MemoryClient

MODEL, DIM = "hash-64", 64


@pytest.fixture
def store():  # type: ignore[no-untyped-def]
    return MemoryClient().create_collection("kwd", MODEL, DIM)


def test_tokenizer_lowercases_drops_stopwords_and_splits_identifiers() -> None:
    tokens = KeywordTokenizer()("The max_workers of a ThreadPoolExecutor, and os.path.join")
    assert tokens == ["max_workers", "max", "workers", "threadpoolexecutor", "os", "path", "join"]
    assert "the" in KeywordTokenizer(stopwords=False)("The end")


def test_tokenizer_stemmer_needs_pystemmer_or_says_so() -> None:
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match="PyStemmer"):
            KeywordTokenizer(stemmer="english")
    else:
        assert KeywordTokenizer(stemmer="english")("sorting sorted") == ["sort", "sort"]


def test_ranks_by_bm25_and_counts_heading_paths(store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    add_document(store, embedder, "a.txt", ["apples and pears", "pears only here"])
    add_document(store, embedder, "b.txt", ["apples apples apples"])
    chunks = store.all_chunks()
    index = BM25Index.build(chunks, KeywordTokenizer(), "s")
    tok = KeywordTokenizer()
    hits = index.search(tok("apples"), 10)
    assert [h.chunk.metadata["source"] for h in hits] == ["b.txt", "a.txt"]
    assert hits[0].score > hits[1].score > 0
    assert index.search(tok("bananas"), 10) == []  # no shared word, no hit
    assert index.search(tok("the"), 10) == []  # only stop words
    # The heading path is indexed with the text, as it is embedded.
    add_document(store, embedder, "c.txt", ["plain words"], {"heading_path": "Kiwi Guide"})
    index = BM25Index.build(store.all_chunks(), tok, "s")
    assert [h.chunk.metadata["source"] for h in index.search(tok("kiwi"), 5)] == ["c.txt"]


def test_filters_apply_before_top_k(store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    for i in range(20):
        add_document(store, embedder, f"d{i:02d}.txt", ["shared word " * (20 - i)], {"n": i})
    index = BM25Index.build(store.all_chunks(), KeywordTokenizer(), "s")
    hits = index.search(["shared"], 3, {"n": {"$gte": 15}})
    assert [h.chunk.metadata["n"] for h in hits] == [15, 16, 17]
    assert index.search(["shared"], 3, {"n": 99}) == []


def test_ties_go_to_the_smaller_chunk_id(store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    for name in ("z.txt", "a.txt", "m.txt"):
        add_document(store, embedder, name, ["same text"])
    index = BM25Index.build(store.all_chunks(), KeywordTokenizer(), "s")
    hits = index.search(["same"], 2)
    ids = sorted(c.id for c in store.all_chunks())
    assert [h.chunk.id for h in hits] == ids[:2]


def test_save_and_load_round_trip(tmp_path: Path, store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    add_document(store, embedder, "a.txt", ["alpha beta", "gamma"], {"lang": "en", "n": 2})
    index = BM25Index.build(store.all_chunks(), KeywordTokenizer(), "stamp-1")
    index.save(tmp_path / "kwd")
    loaded = BM25Index.load(tmp_path / "kwd")
    assert loaded is not None
    assert loaded.stamp == "stamp-1"
    assert loaded.signature == index.signature
    assert loaded.chunks == index.chunks
    assert loaded.search(["alpha"], 5) == index.search(["alpha"], 5)
    # A second save replaces CURRENT; the folder holds the current version.
    BM25Index.build([], KeywordTokenizer(), "stamp-2").save(tmp_path / "kwd")
    again = BM25Index.load(tmp_path / "kwd")
    assert again is not None
    assert again.stamp == "stamp-2"
    assert len(again) == 0
    current = json.loads((tmp_path / "kwd" / CURRENT_FILE).read_text())["version"]
    assert (tmp_path / "kwd" / current / "meta.json").exists()
    assert not list((tmp_path / "kwd").glob(".*tmp*"))


def test_unreadable_or_missing_index_loads_as_none(tmp_path: Path) -> None:
    assert BM25Index.load(tmp_path / "nothing") is None
    folder = tmp_path / "kwd"
    folder.mkdir()
    (folder / CURRENT_FILE).write_text('{"version": "v-gone"}')
    assert BM25Index.load(folder) is None


def test_stamp_changes_with_every_write(store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    add_document(store, embedder, "z.txt", ["zero"])
    stamps = [store_stamp(store)]
    add_document(store, embedder, "a.txt", ["one"])
    stamps.append(store_stamp(store))
    add_document(store, embedder, "a.txt", ["two"])  # replaced: same counts
    stamps.append(store_stamp(store))
    store.delete_document(document_id_for("z.txt"))
    stamps.append(store_stamp(store))
    assert len(set(stamps)) == 4
    assert store_stamp(store) == store_stamp(store)


def test_keyword_index_rebuilds_only_when_the_store_changed(store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    add_document(store, embedder, "a.txt", ["alpha"])
    index = KeywordIndex(store, KeywordTokenizer(), check_interval_s=0)
    assert [h.chunk.text for h in index.search("alpha", 5)] == ["alpha"]
    index.search("alpha", 5)
    assert index.rebuilds == 1
    add_document(store, embedder, "b.txt", ["alpha beta"])
    assert len(index.search("alpha", 5)) == 2
    assert index.rebuilds == 2


def test_check_interval_bounds_how_often_the_store_is_compared(
    store, embedder: HashEmbedder
) -> None:  # type: ignore[no-untyped-def]
    now = [0.0]
    index = KeywordIndex(store, KeywordTokenizer(), check_interval_s=10, clock=lambda: now[0])
    assert index.search("alpha", 5) == []
    add_document(store, embedder, "a.txt", ["alpha"])  # an unreported (other-process) write
    now[0] = 5.0
    assert index.search("alpha", 5) == []  # not checked yet
    now[0] = 10.0
    assert len(index.search("alpha", 5)) == 1  # interval passed: noticed
    add_document(store, embedder, "b.txt", ["alpha"])
    index.mark_stale()  # a reported (local) write is noticed at once
    assert len(index.search("alpha", 5)) == 2


def test_persisted_index_is_reused_when_fresh_and_rebuilt_when_stale(
    tmp_path: Path, embedder: HashEmbedder
) -> None:
    client = FaissClient(tmp_path / "data")
    store = client.create_collection("kwd", MODEL, DIM)
    add_document(store, embedder, "a.txt", ["alpha"])
    folder = tmp_path / "data" / "bm25" / "kwd"
    first = KeywordIndex(store, KeywordTokenizer(), folder)
    assert len(first.search("alpha", 5)) == 1
    assert first.rebuilds == 1
    client.close()

    # Restart without changes: the persisted index is loaded, not rebuilt.
    client = FaissClient(tmp_path / "data")
    store = client.get_collection("kwd")
    second = KeywordIndex(store, KeywordTokenizer(), folder)
    assert len(second.search("alpha", 5)) == 1
    assert second.rebuilds == 0
    # Written while the index was not watching (another process, a CLI ingest): the persisted
    # stamp no longer matches, so the next start rebuilds.
    add_document(store, embedder, "b.txt", ["alpha beta"])
    client.close()
    client = FaissClient(tmp_path / "data")
    third = KeywordIndex(client.get_collection("kwd"), KeywordTokenizer(), folder)
    assert len(third.search("alpha", 5)) == 2
    assert third.rebuilds == 1
    # A different tokenizer does not reuse an index built by another one.
    fourth = KeywordIndex(client.get_collection("kwd"), KeywordTokenizer(stopwords=False), folder)
    fourth.search("alpha", 5)
    assert fourth.rebuilds == 1
    client.close()


def test_a_write_during_the_rebuild_leaves_the_index_marked_for_another(
    store, embedder: HashEmbedder
) -> None:  # type: ignore[no-untyped-def]
    add_document(store, embedder, "a.txt", ["alpha"])
    index = KeywordIndex(store, KeywordTokenizer(), check_interval_s=0)
    real = store.all_chunks

    def racing() -> list:  # type: ignore[type-arg]
        chunks = real()
        add_document(store, embedder, "b.txt", ["alpha beta"])  # lands after the read
        return chunks

    store.all_chunks = racing
    assert len(index.search("alpha", 5)) == 1
    store.all_chunks = real
    assert len(index.search("alpha", 5)) == 2  # the unmatched stamp forced a rebuild


def test_a_change_made_through_another_client_is_noticed(
    tmp_path: Path, embedder: HashEmbedder
) -> None:
    """Two API replicas over one Chroma: the index of one notices the other's writes."""
    from vectorstores.chroma_store import ChromaClient

    mine, theirs = ChromaClient(tmp_path / "data"), ChromaClient(tmp_path / "data")
    try:
        store = mine.create_collection("kwd", MODEL, DIM)
        other = theirs.get_collection("kwd")
        add_document(store, embedder, "a.txt", ["alpha"])
        index = KeywordIndex(store, KeywordTokenizer(), tmp_path / "bm25", check_interval_s=0)
        assert len(index.search("alpha", 5)) == 1
        add_document(other, embedder, "b.txt", ["alpha beta"])
        assert {h.chunk.metadata["source"] for h in index.search("alpha", 5)} == {"a.txt", "b.txt"}
        other.delete_document(other.list_documents()[0].id)
        assert [h.chunk.metadata["source"] for h in index.search("alpha", 5)] == ["b.txt"]
    finally:
        mine.close()
        theirs.close()


def test_bursts_of_saves_keep_only_a_few_versions(tmp_path: Path) -> None:
    folder = tmp_path / "kwd"
    for i in range(6):
        BM25Index.build([], KeywordTokenizer(), f"stamp-{i}").save(folder)
    versions = sorted(p.name for p in folder.glob("v-*"))
    assert len(versions) == 3  # CURRENT and the two newest before it
    current = json.loads((folder / CURRENT_FILE).read_text())["version"]
    assert current == versions[-1]
    loaded = BM25Index.load(folder)
    assert loaded is not None
    assert loaded.stamp == "stamp-5"


def test_unknown_share_counts_question_words_no_chunk_holds(store, embedder: HashEmbedder) -> None:  # type: ignore[no-untyped-def]
    add_document(store, embedder, "a.txt", ["apples and pears", "pears only here"])
    tok = KeywordTokenizer()
    index = BM25Index.build(store.all_chunks(), tok, "s")
    assert index.unknown_share(tok("apples pears")) == 0.0
    assert index.unknown_share(tok("apples bananas kiwis pears")) == 0.5
    assert index.unknown_share(tok("the")) == 0.0  # only stop words: nothing to judge
    assert BM25Index.build([], tok, "s").unknown_share(tok("apples")) == 1.0


def test_unknown_share_knows_a_word_in_the_inflection_the_collection_uses(
    store, embedder: HashEmbedder
) -> None:  # type: ignore[no-untyped-def]
    # "When does the library open?" of a text that says "opens" and "libraries" is answerable.
    add_document(store, embedder, "a.txt", ["The libraries opens at nine and closing hours vary."])
    tok = KeywordTokenizer()
    index = BM25Index.build(store.all_chunks(), tok, "s")
    assert index.unknown_share(tok("library open")) == 0.0
    # How the question is asked does not count: the text never says "when" or "does".
    assert index.unknown_share(tok("When does the library open?")) == 0.0
    assert index.unknown_share(tok("How do I open the vault?")) == 0.5
    assert index.unknown_share(tok("opened libraries closed")) == 0.0
    assert index.unknown_share(tok("library kubernetes")) == 0.5
    assert index.unknown_share(tok("nin")) == 1.0  # short stems must match as they are


def test_known_word_matches_exact_words_and_inflections_of_long_stems() -> None:
    vocabulary = sorted(["archive", "hours", "librarian", "opening", "opens", "postgresql"])
    for word in ("open", "opened", "archiving", "hour", "hours", "libraries"):
        assert known_word(word, vocabulary), word
    for word in ("code", "kubernetes", "ope", "vault"):
        assert not known_word(word, vocabulary), word
