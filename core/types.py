"""The domain types every layer shares: chunks, search hits, document records.

They live below every other package so that ``prompts/`` can describe what it packs and
``retrieval/`` what it ranks without importing the store layer. Chunk metadata is read only
through ``Chunk``'s accessors (``source``, ``page``, ``heading_path``, ``embedding_text``), so
every reader agrees on what a missing or odd value means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetadataValue = str | int | float | bool

ScoreKind = Literal["cosine", "bm25", "fused", "rerank"]
"""What a ``Hit.score`` measures.

* ``cosine``: cosine similarity of chunk and query (-1 to 1), from a vector store.
* ``bm25``: a BM25 score (0 to unbounded), from the keyword index.
* ``fused``: a reciprocal-rank-fusion score, ``sum(weight / (k + rank))``.
* ``rerank``: a cross-encoder's relevance score.
"""


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, the unit that is embedded and retrieved.

    Attributes:
        id: Stable id, ``"{document_id}:{position:05d}"``.
        document_id: Id of the document the chunk belongs to.
        text: The chunk's own text, as quoted in citations (ingestion embeds it with its
            heading path in front; see ``embedding_text``).
        metadata: Flat metadata: ``source``, ``document_id``, ``position``, ``page``,
            ``heading_path``, ``start``, ``end`` and any user metadata of the document.
    """

    id: str
    document_id: str
    text: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The source name the chunk came from ("" when unknown)."""
        value = self.metadata.get("source")
        return "" if value is None else str(value)

    @property
    def position(self) -> int:
        """The chunk's 0-based position in its document (0 when unknown)."""
        value = self.metadata.get("position", 0)
        return int(value)

    @property
    def page(self) -> int | None:
        """The 1-based page number, or None when the format has no pages.

        Only a positive integer counts as a page: 0, negatives, booleans and non-integers
        (which user metadata could carry) read as None.
        """
        value = self.metadata.get("page")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return None

    @property
    def heading_path(self) -> str:
        """The headings above the chunk, joined by `` > `` ("" when none)."""
        value = self.metadata.get("heading_path")
        return "" if value is None else str(value)

    @property
    def embedding_text(self) -> str:
        """What is embedded and keyword-indexed: the heading path, a newline, the text.

        The chunk's own text stays raw for citations; the heading path gives the model the
        context (page title, section) that the text alone may lack.
        """
        heading = self.heading_path
        return f"{heading}\n{self.text}" if heading else self.text


def embedding_text(chunk: Chunk) -> str:
    """Return ``chunk.embedding_text`` (a function, for ``map`` and older callers)."""
    return chunk.embedding_text


@dataclass(frozen=True)
class Hit:
    """A search result: a chunk and its score (higher is better).

    Attributes:
        chunk: The chunk found.
        score: The score; what it measures is ``kind``.
        kind: ``cosine`` (vector stores), ``bm25`` (keyword index), ``fused`` (hybrid
            fusion) or ``rerank`` (cross-encoder); see ``ScoreKind``.
    """

    chunk: Chunk
    score: float
    kind: ScoreKind = "cosine"


@dataclass(frozen=True)
class DocumentRecord:
    """What a collection knows about one ingested document.

    Attributes:
        id: Document id, derived from the source name (same source, same id).
        source: The source name (the uploaded file name or path relative to the ingest root).
        content_hash: sha256 hex digest of the file's bytes; equal hash means unchanged.
        chunk_count: Number of chunks stored for the document.
        metadata: User metadata applied to the document (also copied onto each chunk).
        created_at: Unix time the document was first stored.
        updated_at: Unix time the document was last replaced.
    """

    id: str
    source: str
    content_hash: str
    chunk_count: int
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
