"""The LangChain baseline loads pages with LangChain's own loaders and scores PDF pages apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_community", reason="the bench extra: pip install -e '.[bench]'")

from langchain_core.embeddings import Embeddings  # noqa: E402

from bench.langchain_baseline import (  # noqa: E402
    build_langchain_index,
    langchain_search,
    load_native_documents,
)
from tests.ingest.files import make_pdf  # noqa: E402

PAGES = [
    "Penguins waddle across the antarctic ice and dive for krill.",
    "Volcanoes erupt molten basalt lava from the mantle below.",
]


class WordEmbeddings(Embeddings):
    """A deterministic bag-of-words embedding (LangChain's Embeddings interface)."""

    def _vector(self, text: str) -> list[float]:
        vector = np.zeros(64)
        for word in text.lower().split():
            vector[sum(map(ord, word.strip(".,?"))) % 64] += 1.0
        return (vector / (np.linalg.norm(vector) or 1.0)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def test_pdf_pages_keep_our_source_and_a_1_based_page(tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    path.write_bytes(make_pdf(PAGES))
    documents = load_native_documents([(path, "guide.pdf")], "pdf")
    assert [d.metadata for d in documents] == [
        {"source": "guide.pdf", "page": 1},
        {"source": "guide.pdf", "page": 2},
    ]
    assert "basalt" in documents[1].page_content
    store, stats = build_langchain_index([], WordEmbeddings(), documents=documents)
    assert stats.chunks == 2
    assert langchain_search(store, "volcanoes basalt lava", k=2)[0] == "guide.pdf#page=2"


def test_html_is_the_whole_page_text_as_beautifulsoup_gives_it(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Ice</title></head><body><nav>Home | Next</nav>"
        f"<div role='main'><p>{PAGES[0]}</p></div></body></html>",
        encoding="utf-8",
    )
    [document] = load_native_documents([(path, "birds/page.html")], "html")
    assert document.metadata == {"source": "birds/page.html"}
    assert "Home | Next" in document.page_content  # the plain pipeline keeps page chrome
    assert "krill" in document.page_content
