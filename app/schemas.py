"""Request and response models of the HTTP API (kept apart from internal dataclasses)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{1,61}[A-Za-z0-9]$"
MetadataValue = str | int | float | bool


class ErrorBody(BaseModel):
    """The error part of every error answer."""

    type: str = Field(description="Error class, e.g. UnsupportedFileType.")
    message: str = Field(description="What went wrong and what to do about it.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Structured context.")


class Problem(BaseModel):
    """Every error answer has this shape."""

    error: ErrorBody


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "loading", "failed"]
    detail: dict[str, Any] = Field(default_factory=dict)


class CollectionCreate(BaseModel):
    """Create a collection."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=COLLECTION_NAME_PATTERN,
        description="3 to 63 letters, digits, '_' or '-', starting and ending alphanumeric.",
    )


class CollectionOut(BaseModel):
    """A collection and its size."""

    name: str
    embedding_model: str
    dimension: int
    documents: int
    chunks: int


class CollectionList(BaseModel):
    """All collections."""

    collections: list[CollectionOut]


class FileError(BaseModel):
    """Why one file failed."""

    type: str
    message: str


class FileResultOut(BaseModel):
    """The outcome of ingesting one uploaded file."""

    document_id: str | None
    filename: str
    status: Literal["created", "unchanged", "replaced", "failed"]
    chunks: int
    error: FileError | None = None


class UploadResult(BaseModel):
    """The outcome of an upload processed before the response."""

    collection: str
    files: list[FileResultOut]


class JobOut(BaseModel):
    """An ingestion job running in the background."""

    id: str
    collection: str
    state: Literal["queued", "running", "succeeded", "failed"]
    files_total: int
    files_done: int
    chunks_embedded: int
    files: list[FileResultOut]
    created_at: float
    finished_at: float | None = None
    error: str | None = None


class DocumentOut(BaseModel):
    """A stored document."""

    id: str
    filename: str
    content_hash: str
    chunks: int
    metadata: dict[str, MetadataValue]
    created_at: float
    updated_at: float


class DocumentList(BaseModel):
    """A page of documents."""

    documents: list[DocumentOut]
    total: int
    limit: int
    offset: int


class ChunkOut(BaseModel):
    """A stored chunk."""

    id: str
    document_id: str
    position: int
    page: int | None
    heading_path: str
    text: str
    metadata: dict[str, MetadataValue]


class ChunkList(BaseModel):
    """A document's chunks in order."""

    document_id: str
    chunks: list[ChunkOut]


class SearchRequest(BaseModel):
    """Search a collection."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="What to look for.")
    top_k: int = Field(5, ge=1, description="How many hits to return.")
    filter: dict[str, Any] | None = Field(
        None, description="Metadata filter: equality, $in, $ne, $gt/$gte/$lt/$lte, $and/$or."
    )
    score_threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="Leave out hits below this cosine similarity."
    )
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(
        None, description="Retrieval mode; the server's default when omitted."
    )
    mmr: bool = Field(False, description="Diversify the hits with maximal marginal relevance.")
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="MMR trade-off: 1 is pure relevance."
    )
    rerank: bool | None = Field(
        None, description="Rerank with the cross-encoder (when one is configured)."
    )


class HitOut(BaseModel):
    """One search hit."""

    chunk_id: str
    document_id: str
    filename: str
    page: int | None
    heading_path: str
    text: str
    score: float


class SearchResponse(BaseModel):
    """Search hits, best first."""

    query: str
    mode: str
    hits: list[HitOut]


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    return {code: {"model": Problem} for code in (*codes, 422, 503)}
