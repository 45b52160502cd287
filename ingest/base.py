"""Contracts of the ingestion stage: the ``Embedder`` and the loaded-document types."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Span = tuple[int, int]


@dataclass(frozen=True)
class Section:
    """A run of text from a loaded file with its place in the document.

    Attributes:
        text: Normalised text (NFC, collapsed whitespace, paragraphs kept as blank lines).
        page: 1-based page number for paged formats (PDF), else None.
        heading_path: Headings above the text, outermost first (``["json", "Basic Usage"]``).
        table_header: For a table (see ``ingest.tables``), its markdown header (the header
            row and the ``| --- |`` line), with which ``text`` starts; the rows follow, one a
            line. None for other text.
        ocr_confidence: For text read by OCR, the mean word confidence (0 to 100); else None.
    """

    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    table_header: str | None = None
    ocr_confidence: float | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """A file turned into text sections, before chunking.

    ``warnings`` lists what could not be read without failing the file (an unreadable scanned
    page), one message each, naming the file and the page.
    """

    source: str
    file_type: str
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class ChunkTokenizer(Protocol):
    """The embedding model's tokenizer, as chunking needs it.

    Attributes:
        special_tokens: Tokens the model adds to every text (``[CLS]``, ``[SEP]``: 2).
    """

    special_tokens: int

    def token_spans(self, texts: Sequence[str]) -> list[list[Span]]:
        """Return, per text, the character span of each token (special tokens excluded)."""


class WhitespaceTokenizer:
    """A tokenizer of whitespace-separated words, for tests and for embedders without one."""

    def __init__(self, special_tokens: int = 2) -> None:
        """Count ``special_tokens`` extra tokens per text, as a model would."""
        self.special_tokens = special_tokens

    def token_spans(self, texts: Sequence[str]) -> list[list[Span]]:
        """Return the span of every whitespace-separated word of each text."""
        return [[m.span() for m in re.finditer(r"\S+", text)] for text in texts]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors.

    ``embed`` never truncates silently: chunking keeps every chunk within ``max_seq_length``
    tokens of ``count_tokens``.
    """

    model_name: str
    dimension: int
    max_seq_length: int

    @property
    def chunk_tokenizer(self) -> ChunkTokenizer:
        """The model's tokenizer as chunking needs it (``WhitespaceTokenizer`` approximates)."""

    @property
    def backend_info(self) -> dict[str, str]:
        """The numeric backends in use, as ``/readyz`` shows them.

        ``backend`` and ``query_backend``; empty for an embedder with no choice of backend.
        """

    @property
    def cache_namespace(self) -> str:
        """What an embedding cache keys this embedder's vectors by.

        The model, and anything else that changes the vectors it computes (for one, whether
        the weights run in torch or as an ONNX export).
        """

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed documents' chunks; returns shape ``(len(texts), dimension)``, unit rows."""

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query; returns shape ``(dimension,)``, unit length."""

    def count_tokens(self, text: str) -> int:
        """Count the tokens the model sees for ``text`` (special tokens included)."""
