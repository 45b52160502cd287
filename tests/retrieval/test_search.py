"""SearchService over real services: the BM25 index in step with ingest, replace and delete;
filters; score semantics; MMR; reranking; persistence across restarts."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from app.services.container import Components, Services, build_services
from app.settings import Settings
from core.errors import InvalidRequest
from ingest.chunking import document_id_for
from retrieval.fusion import keyword_floor, rrf_fuse, score_fuse
from tests.fakes import HashEmbedder
from tests.retrieval.conftest import DOCS


def make_settings(data_dir: Path, **retrieval: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        llm={"load_at_startup": False},
        retrieval={"keyword_check_interval_s": 0, **retrieval},
    )


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(make_settings(tmp_path / "data"), Components(embedder=HashEmbedder()))
    yield built
    built.close()


def upload(
    services: Services,
    files: dict[str, str],
    metadata: dict[str, object] | None = None,
    collection: str = "default",
) -> None:
    staged = services.documents.stage(
        [(name, io.BytesIO(text.encode())) for name, text in files.items()]
    )
    results = services.documents.ingest_staged(collection, staged, metadata=metadata)
    assert all(r.status in ("created", "replaced") for r in results), results


def sources(services: Services, query: str, mode: str, **kwargs: object) -> list[str]:
    outcome = services.search.search("default", query, 5, mode=mode, **kwargs)  # type: ignore[arg-type]
    assert outcome.mode == mode
    return [str(h.chunk.metadata["source"]) for h in outcome.hits]


def test_keyword_index_follows_ingest_replace_and_delete(services: Services) -> None:
    upload(services, DOCS)
    assert sources(services, "heappush", "bm25") == ["heapq.txt"]
    assert sources(services, "heappush", "hybrid")[0] == "heapq.txt"
    # Replaced with new bytes: the old words stop matching, the new ones match.
    upload(services, {"heapq.txt": "A binary heap offers fast merging of sorted inputs."})
    assert sources(services, "heappush", "bm25") == []
    assert sources(services, "merging", "bm25") == ["heapq.txt"]
    # Deleted: its words no longer match in either keyword mode.
    services.documents.delete("default", document_id_for("heapq.txt"))
    assert sources(services, "merging", "bm25") == []
    assert "heapq.txt" not in sources(services, "merging", "hybrid")


def test_writes_that_bypass_the_service_are_noticed(services: Services, doc_dir: Path) -> None:
    """A CLI ingest or another replica writes to the store directly."""
    from ingest.limits import LoadLimits
    from ingest.pipeline import IngestPipeline

    assert sources(services, "virtual environments", "bm25") == []
    store = services.collections.get("default")
    pipeline = IngestPipeline(HashEmbedder(), chunk_size=64, chunk_overlap=8, limits=LoadLimits())
    pipeline.ingest_paths(store, [doc_dir], progress_bar=False)
    assert sources(services, "virtual environments", "bm25") == ["venv.txt"]
    store.delete_document(document_id_for("venv.txt"))
    assert sources(services, "virtual environments", "bm25") == []


def test_filters_apply_in_every_mode(services: Services) -> None:
    upload(services, {"a.txt": "sorting lists with bisect"}, {"lang": "en"})
    upload(services, {"b.txt": "sorting lists with bisect, en français"}, {"lang": "fr"})
    for mode in ("dense", "bm25", "hybrid"):
        got = sources(services, "sorting bisect", mode, filter={"lang": "fr"})
        assert got == ["b.txt"], mode
        assert sources(services, "sorting bisect", mode, filter={"lang": "de"}) == []
    with pytest.raises(InvalidRequest):
        services.search.search("default", "x", 5, filter={"lang": {"$bogus": 1}}, mode="bm25")


def test_enough_candidates_survive_a_filter(services: Services) -> None:
    files = {f"doc{i:02d}.txt": f"common words here number {i}" for i in range(30)}
    for i, (name, text) in enumerate(files.items()):
        upload(services, {name: text}, {"even": i % 2 == 0})
    for mode in ("bm25", "hybrid", "dense"):
        outcome = services.search.search(
            "default", "common words", 10, filter={"even": True}, mode=mode
        )
        assert len(outcome.hits) == 10, mode
        assert all(h.chunk.metadata["even"] is True for h in outcome.hits)


def test_scores_per_mode(services: Services) -> None:
    upload(services, DOCS)
    store = services.collections.get("default")
    query = "sorted list bisection"
    dense = services.search.search("default", query, 4, mode="dense").hits
    vector = HashEmbedder().embed_query(query)
    assert [(h.chunk.id, h.score) for h in dense] == [
        (h.chunk.id, pytest.approx(h.score)) for h in store.search(vector, 4)
    ]
    assert {h.kind for h in dense} == {"cosine"}
    keyword = services.search.search("default", query, 4, mode="bm25").hits
    assert all(h.score > 0 for h in keyword)
    assert {h.kind for h in keyword} == {"bm25"}
    hybrid = services.search.search("default", query, 4, mode="hybrid")
    retrieval = make_settings(Path("unused")).retrieval
    assert retrieval.fusion == "rrf"  # the default
    weights = [retrieval.dense_weight, retrieval.keyword_weight]
    expected = rrf_fuse([store.search(vector, 50), keyword], k=60, weights=weights)[:4]
    assert [(h.chunk.id, h.score) for h in hybrid.hits] == [
        (h.chunk.id, pytest.approx(h.score)) for h in expected
    ]
    assert all(h.score <= sum(weights) / 61 for h in hybrid.hits)
    assert {h.kind for h in hybrid.hits} == {"fused"}
    assert hybrid.score_type == "rrf"


def test_zscore_fusion_scores(tmp_path: Path) -> None:
    built = build_services(
        make_settings(tmp_path / "data", fusion="zscore"), Components(embedder=HashEmbedder())
    )
    try:
        upload(built, DOCS)
        query = "sorted list bisection"
        vector = HashEmbedder().embed_query(query)
        hybrid = built.search.search("default", query, 4, mode="hybrid")
        assert hybrid.score_type == "zscore"
        # The sum of each list's z-scores over the 50 candidates each retriever contributes.
        candidates = built.search.search("default", query, 50, mode="bm25").hits
        store = built.collections.get("default")
        floors = [None, keyword_floor(candidates, 50)]
        expected = score_fuse([store.search(vector, 50), candidates], "zscore", floors, 50)[:4]
        assert [(h.chunk.id, h.score) for h in hybrid.hits] == [
            (h.chunk.id, pytest.approx(h.score)) for h in expected
        ]
        assert {h.kind for h in hybrid.hits} == {"fused"}
        # A rare word only one chunk holds comes first with z-scores too: BM25's lone hit counts.
        top = built.search.search("default", "heappush", 5, mode="hybrid").hits[0]
        assert top.chunk.metadata["source"] == "heapq.txt"
    finally:
        built.close()


def test_score_threshold_is_a_cosine_for_dense_candidates_only(services: Services) -> None:
    upload(services, DOCS)
    high = 0.99
    assert (
        services.search.search("default", "bisect", 5, score_threshold=high, mode="dense").hits
        == []
    )
    hybrid = services.search.search("default", "bisect", 5, score_threshold=high, mode="hybrid")
    keyword = services.search.search("default", "bisect", 5, score_threshold=high, mode="bm25")
    assert [h.chunk.id for h in hybrid.hits] == [h.chunk.id for h in keyword.hits] != []


def test_mmr_keeps_near_duplicates_apart(services: Services) -> None:
    twin = "The heapq module implements the heap queue algorithm with heappush and heappop."
    upload(
        services,
        {
            "one.txt": twin,
            "two.txt": twin + " Indeed.",
            "three.txt": "A heap queue keeps the smallest item first; heappush adds one.",
            "four.txt": "Unrelated text about json documents.",
        },
    )
    query = "heapq heap queue algorithm heappush heappop"
    for mode in ("dense", "bm25", "hybrid"):
        plain = sources(services, query, mode)
        assert set(plain[:2]) == {"one.txt", "two.txt"}, mode  # the twins rank first
        diverse = sources(services, query, mode, mmr=True, mmr_lambda=0.3)
        assert diverse[0] in ("one.txt", "two.txt")
        assert not {"one.txt", "two.txt"} <= set(diverse[:2]), mode  # the twin waits
        assert set(diverse) == set(plain), mode  # reordered, from the same candidates
        same = sources(services, query, mode, mmr=True, mmr_lambda=1.0)
        assert same == plain, mode
    outcome = services.search.search("default", query, 2, mode="hybrid", mmr=True)
    assert outcome.mmr
    assert len(outcome.hits) == 2


class ReverseLengthReranker:
    model_name = "reverse-length"

    def __init__(self) -> None:
        self.calls = 0

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self.calls += 1
        return [-float(len(p)) for p in passages]


def test_rerank_is_used_when_configured_and_can_be_turned_off(services: Services) -> None:
    upload(services, DOCS)
    with pytest.raises(InvalidRequest, match="no reranker is configured"):
        services.search.search("default", "module", 3, rerank=True)
    plain = services.search.search("default", "module", 3, mode="bm25")
    assert not plain.reranked
    reranker = ReverseLengthReranker()
    services.search.reranker = reranker
    ranked = services.search.search("default", "module", 3, mode="bm25")
    assert ranked.reranked
    assert reranker.calls == 1
    lengths = [len(h.chunk.text) for h in ranked.hits]
    assert lengths == sorted(lengths)
    assert [h.score for h in ranked.hits] == [-float(n) for n in lengths]
    off = services.search.search("default", "module", 3, mode="bm25", rerank=False)
    assert not off.reranked
    assert [h.chunk.id for h in off.hits] == [h.chunk.id for h in plain.hits]


def test_bad_arguments(services: Services) -> None:
    with pytest.raises(InvalidRequest, match="unknown search mode"):
        services.search.search("default", "x", 5, mode="sparse")
    with pytest.raises(InvalidRequest, match="top_k"):
        services.search.search("default", "x", 1000)
    with pytest.raises(InvalidRequest, match="mmr_lambda"):
        services.search.search("default", "x", 5, mmr=True, mmr_lambda=1.5)


def test_persisted_index_survives_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    first = build_services(settings, Components(embedder=HashEmbedder()))
    try:
        upload(first, DOCS)
        assert sources(first, "heappush", "bm25") == ["heapq.txt"]
        first.search.keywords.wait()
    finally:
        first.close()
    assert (tmp_path / "data" / "bm25" / "default" / "CURRENT").exists()
    second = build_services(settings, Components(embedder=HashEmbedder()))
    try:
        second.search.keywords.wait()  # start-up warm-up loads it
        index = second.search.keywords.get("default")
        assert index.rebuilds == 0
        assert sources(second, "heappush", "bm25") == ["heapq.txt"]
        assert index.rebuilds == 0
    finally:
        second.close()


def test_default_mode_comes_from_settings(tmp_path: Path) -> None:
    built = build_services(
        make_settings(tmp_path / "data", mode="bm25"), Components(embedder=HashEmbedder())
    )
    try:
        upload(built, DOCS)
        assert built.search.search("default", "heappush", 3).mode == "bm25"
        assert np.isfinite([h.score for h in built.search.search("default", "json", 3).hits]).all()
    finally:
        built.close()


def test_local_writes_are_noticed_at_once_whatever_the_interval(tmp_path: Path) -> None:
    """DocumentService reports its writes; the check interval only bounds other processes."""
    built = build_services(
        make_settings(tmp_path / "data", keyword_check_interval_s=3600),
        Components(embedder=HashEmbedder()),
    )
    try:
        assert sources(built, "heappush", "bm25") == []
        upload(built, DOCS)
        assert sources(built, "heappush", "bm25") == ["heapq.txt"]
        built.documents.delete("default", document_id_for("heapq.txt"))
        assert sources(built, "heappush", "bm25") == []
    finally:
        built.close()


def test_start_up_removes_indexes_of_deleted_collections(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    first = build_services(settings, Components(embedder=HashEmbedder()))
    try:
        first.collections.create("gone")
        upload(first, DOCS, collection="gone")
        assert first.search.search("gone", "heappush", 3, mode="bm25").hits
        first.search.keywords.wait()
        first.collections.delete("gone")
        folder = tmp_path / "data" / "bm25"
        assert not (folder / "gone").exists()  # removed with the collection, at once
    finally:
        first.close()
    # One left behind (deleted by another process, or by a crash before the removal).
    (folder / "gone" / "v-leftover").mkdir(parents=True)
    second = build_services(settings, Components(embedder=HashEmbedder()))
    try:
        second.search.keywords.wait()
        assert not (folder / "gone").exists()
        assert (folder / "default").is_dir()
    finally:
        second.close()


def test_hybrid_weights_come_from_settings(tmp_path: Path) -> None:
    built = build_services(
        make_settings(tmp_path / "data", fusion="rrf", dense_weight=0.0, keyword_weight=1.0),
        Components(embedder=HashEmbedder()),
    )
    try:
        upload(built, DOCS)
        query = "heappush onto the heap"
        keyword = built.search.search("default", query, 5, mode="bm25").hits
        hybrid = built.search.search("default", query, 5, mode="hybrid").hits
        # With the dense ranking weighted 0, hybrid is the BM25 order.
        assert [h.chunk.id for h in hybrid[: len(keyword)]] == [h.chunk.id for h in keyword]
    finally:
        built.close()


def test_hybrid_weights_must_not_both_be_zero(tmp_path: Path) -> None:
    from core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="not both 0"):
        build_services(
            make_settings(tmp_path / "data", dense_weight=0.0, keyword_weight=0.0),
            Components(embedder=HashEmbedder()),
        )


def test_an_unknown_fusion_is_a_configuration_error(services: Services) -> None:
    from core.errors import ConfigurationError
    from retrieval.search import Searcher

    with pytest.raises(ConfigurationError, match="unknown fusion 'softmax'"):
        Searcher(
            services.collections.get,
            HashEmbedder(),
            "hybrid",
            10,
            keywords=services.search.keywords,
            fusion="softmax",
        )
