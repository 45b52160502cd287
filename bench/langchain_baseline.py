"""The baseline: a plain LangChain RAG retrieval pipeline over the same pages.

Pages are loaded by LangChain's own loaders (``load_native_documents``: ``BSHTMLLoader``, the
whole page's text as BeautifulSoup gives it, for HTML; ``PyPDFLoader``, one document per page,
for PDF), or, for the ingestion benchmark, from ``bench.corpus.page_text`` (ragserver's
main-body extraction); split by ``RecursiveCharacterTextSplitter(chunk_size=1000,
chunk_overlap=150)``, embedded by ``HuggingFaceEmbeddings`` (``langchain_community``'s, on
sentence-transformers) over the same bundled all-MiniLM-L6-v2 folder, and indexed in
LangChain's ``FAISS`` vector store (its defaults: L2 distance on the model's vectors).

Reusable pieces (the ingestion-speed benchmark imports them too)::

    from bench.corpus import corpus_files
    from bench.langchain_baseline import (
        build_langchain_index, langchain_embeddings, langchain_search)
    embeddings = langchain_embeddings()
    vs, stats = build_langchain_index(corpus_files(), embeddings)
    sources = langchain_search(vs, "How do I ...?", k=10)   # page sources, best first

Needs the ``bench`` extra: ``pip install -e '.[bench]'`` (``langchain-huggingface`` is not
used: every release pins ``huggingface_hub<2``, older than the one the project runs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import page_text  # noqa: E402

CHUNK_SIZE = 1000
CHUNK_OVERLAP = 150


@dataclass(frozen=True)
class LangChainStats:
    """What building the baseline index took.

    Attributes:
        pages: Pages indexed.
        chunks: Chunks the splitter produced.
        load_seconds: Reading and extracting the pages' text.
        split_seconds: Splitting.
        embed_seconds: ``embed_documents`` over every chunk.
        index_seconds: Building the FAISS store from the vectors.
        total_seconds: All of the above.
    """

    pages: int
    chunks: int
    load_seconds: float
    split_seconds: float
    embed_seconds: float
    index_seconds: float
    total_seconds: float

    @property
    def chunks_per_second(self) -> float:
        """Chunks embedded per second of embedding."""
        return self.chunks / self.embed_seconds if self.embed_seconds > 0 else 0.0


def langchain_embeddings(model_path: str | Path | None = None, device: str = "cpu") -> Any:
    """Return ``HuggingFaceEmbeddings`` over the bundled all-MiniLM-L6-v2 (or ``model_path``)."""
    import warnings

    with warnings.catch_warnings():  # the package's sunset notice
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.embeddings import HuggingFaceEmbeddings

    if model_path is None:
        from ingest.embedders import bundled_model_path

        model_path = bundled_model_path()
    return HuggingFaceEmbeddings(
        model_name=str(model_path),
        model_kwargs={"device": device, "local_files_only": True},
    )


def load_langchain_documents(files: Sequence[tuple[Path, str]]) -> list[Any]:
    """One LangChain ``Document`` per page: its main-body text, ``metadata["source"]``."""
    from langchain_core.documents import Document

    return [
        Document(page_content=page_text(path, source), metadata={"source": source})
        for path, source in files
    ]


def load_native_documents(files: Sequence[tuple[Path, str]], kind: str) -> list[Any]:
    """Load pages with LangChain's loaders; ``metadata["source"]`` is ours, PDF pages 1-based.

    Args:
        files: ``(path, source)`` pairs.
        kind: ``html`` (``BSHTMLLoader``, one document per file) or ``pdf`` (``PyPDFLoader``,
            one document per page, its ``page`` turned 1-based like ragserver's).
    """
    from langchain_community.document_loaders import BSHTMLLoader, PyPDFLoader

    documents: list[Any] = []
    for path, source in files:
        if kind == "pdf":
            for page in PyPDFLoader(str(path)).load():
                page.metadata = {"source": source, "page": int(page.metadata["page"]) + 1}
                documents.append(page)
        else:
            document = BSHTMLLoader(path, open_encoding="utf-8").load()[0]
            document.metadata = {"source": source}
            documents.append(document)
    return documents


def build_langchain_index(
    files: Sequence[tuple[Path, str]],
    embeddings: Any,
    *,
    chunk_size: int = CHUNK_SIZE,
    chunk_overlap: int = CHUNK_OVERLAP,
    documents: Sequence[Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Any, LangChainStats]:
    """Load, split, embed and index the pages; return the FAISS store and the timings.

    Args:
        files: ``(path, source)`` pairs, e.g. ``bench.corpus.corpus_files()``.
        embeddings: A LangChain ``Embeddings`` (``langchain_embeddings()``).
        chunk_size: Characters per chunk for ``RecursiveCharacterTextSplitter``.
        chunk_overlap: Characters shared by consecutive chunks.
        documents: Already loaded page documents (skips loading; ``load_seconds`` is then 0).
        log: Called with a progress line per stage.
    """
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    say = log or (lambda _line: None)
    started = time.perf_counter()
    pages = list(documents) if documents is not None else load_langchain_documents(files)
    loaded = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    chunks = splitter.split_documents(pages)
    split = time.perf_counter()
    say(f"langchain: {len(pages)} pages, {len(chunks)} chunks; embedding")
    texts = [chunk.page_content for chunk in chunks]
    vectors = embeddings.embed_documents(texts)
    embedded = time.perf_counter()
    store = FAISS.from_embeddings(
        list(zip(texts, vectors, strict=True)),
        embeddings,
        metadatas=[chunk.metadata for chunk in chunks],
    )
    done = time.perf_counter()
    stats = LangChainStats(
        pages=len(pages),
        chunks=len(chunks),
        load_seconds=loaded - started if documents is None else 0.0,
        split_seconds=split - loaded,
        embed_seconds=embedded - split,
        index_seconds=done - embedded,
        total_seconds=done - started,
    )
    return store, stats


def langchain_search(vectorstore: Any, query: str, k: int = 10) -> list[str]:
    """Return the source page of each of the ``k`` best chunks for ``query``, best first.

    A PDF chunk's is ``source#page=N`` (``retrieval.evaluation.result_key``).
    """
    from retrieval.evaluation import result_key

    return [result_key(doc.metadata) for doc in vectorstore.similarity_search(query, k=k)]
