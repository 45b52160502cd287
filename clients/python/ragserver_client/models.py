"""Typed results of the ragserver API, built from its JSON answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Collection",
    "Conversation",
    "ConversationTurn",
    "Delta",
    "Document",
    "DocumentPage",
    "Embeddings",
    "FileError",
    "FileResult",
    "Hit",
    "Job",
    "PromptInfo",
    "PromptMessage",
    "PromptPreview",
    "SearchResult",
    "UploadResult",
]

Json = dict[str, Any]
JobState = Literal["queued", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class Collection:
    """A collection, its embedding model and size."""

    name: str
    embedding_model: str
    dimension: int
    documents: int
    chunks: int

    @classmethod
    def from_json(cls, data: Json) -> Collection:
        """Build from the API's JSON."""
        return cls(
            name=data["name"],
            embedding_model=data["embedding_model"],
            dimension=int(data["dimension"]),
            documents=int(data["documents"]),
            chunks=int(data["chunks"]),
        )


@dataclass(frozen=True)
class FileError:
    """Why one file failed."""

    type: str
    message: str


@dataclass(frozen=True)
class FileResult:
    """The outcome of ingesting one file: ``created``, ``unchanged``, ``replaced`` or ``failed``."""

    filename: str
    status: str
    chunks: int
    document_id: str | None = None
    error: FileError | None = None

    @classmethod
    def from_json(cls, data: Json) -> FileResult:
        """Build from the API's JSON."""
        error = data.get("error")
        return cls(
            filename=data["filename"],
            status=data["status"],
            chunks=int(data["chunks"]),
            document_id=data.get("document_id"),
            error=FileError(error["type"], error["message"]) if error else None,
        )


@dataclass(frozen=True)
class UploadResult:
    """The outcome of an upload, file by file."""

    collection: str
    files: list[FileResult]

    @classmethod
    def from_json(cls, data: Json) -> UploadResult:
        """Build from the API's JSON."""
        return cls(data["collection"], [FileResult.from_json(f) for f in data["files"]])


@dataclass(frozen=True)
class Job:
    """A background upload: its state and progress."""

    id: str
    collection: str
    state: JobState
    files_total: int
    files_done: int
    chunks_embedded: int
    files: list[FileResult]
    created_at: float
    finished_at: float | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """The job has succeeded or failed."""
        return self.state in ("succeeded", "failed")

    @classmethod
    def from_json(cls, data: Json) -> Job:
        """Build from the API's JSON."""
        return cls(
            id=data["id"],
            collection=data["collection"],
            state=data["state"],
            files_total=int(data["files_total"]),
            files_done=int(data["files_done"]),
            chunks_embedded=int(data["chunks_embedded"]),
            files=[FileResult.from_json(f) for f in data.get("files", [])],
            created_at=float(data["created_at"]),
            finished_at=data.get("finished_at"),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Document:
    """A stored document."""

    id: str
    source: str
    content_hash: str
    chunks: int
    metadata: dict[str, Any]
    created_at: float
    updated_at: float

    @classmethod
    def from_json(cls, data: Json) -> Document:
        """Build from the API's JSON."""
        return cls(
            id=data["id"],
            source=data.get("source") or data["filename"],
            content_hash=data["content_hash"],
            chunks=int(data["chunks"]),
            metadata=dict(data.get("metadata") or {}),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
        )

    @property
    def filename(self) -> str:
        """Deprecated alias of ``source``, as the server keeps it."""
        return self.source


@dataclass(frozen=True)
class DocumentPage:
    """A page of documents and the total that match."""

    documents: list[Document]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: Json) -> DocumentPage:
        """Build from the API's JSON."""
        return cls(
            [Document.from_json(d) for d in data["documents"]],
            int(data["total"]),
            int(data["limit"]),
            int(data["offset"]),
        )


@dataclass(frozen=True)
class Chunk:
    """A stored chunk of a document."""

    id: str
    document_id: str
    position: int
    page: int | None
    heading_path: str
    text: str
    metadata: dict[str, Any]

    @classmethod
    def from_json(cls, data: Json) -> Chunk:
        """Build from the API's JSON."""
        return cls(
            id=data["id"],
            document_id=data["document_id"],
            position=int(data["position"]),
            page=data.get("page"),
            heading_path=data.get("heading_path", ""),
            text=data["text"],
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Hit:
    """One search hit: the chunk, where it comes from, and its score (higher is better)."""

    chunk_id: str
    document_id: str
    source: str
    page: int | None
    heading_path: str
    text: str
    score: float

    @classmethod
    def from_json(cls, data: Json) -> Hit:
        """Build from the API's JSON."""
        return cls(
            chunk_id=data["chunk_id"],
            document_id=data["document_id"],
            source=data.get("source") or data["filename"],
            page=data.get("page"),
            heading_path=data.get("heading_path", ""),
            text=data["text"],
            score=float(data["score"]),
        )

    @property
    def filename(self) -> str:
        """Deprecated alias of ``source``, as the server keeps it."""
        return self.source


@dataclass(frozen=True)
class SearchResult:
    """Search hits, best first, and the retrieval mode that found them."""

    query: str
    mode: str
    hits: list[Hit]

    @classmethod
    def from_json(cls, data: Json) -> SearchResult:
        """Build from the API's JSON."""
        return cls(data["query"], data["mode"], [Hit.from_json(h) for h in data["hits"]])


@dataclass(frozen=True)
class Citation:
    """A chunk that was in the prompt, numbered as the answer cites it (``[number]``)."""

    number: int
    chunk_id: str
    document_id: str
    source: str
    page: int | None
    heading_path: str
    score: float
    quote: str
    cited: bool

    @classmethod
    def from_json(cls, data: Json) -> Citation:
        """Build from the API's JSON."""
        return cls(
            number=int(data["number"]),
            chunk_id=data["chunk_id"],
            document_id=data["document_id"],
            source=data.get("source") or data["filename"],
            page=data.get("page"),
            heading_path=data.get("heading_path", ""),
            score=float(data["score"]),
            quote=data.get("quote", ""),
            cited=bool(data.get("cited", False)),
        )

    @property
    def filename(self) -> str:
        """Deprecated alias of ``source``, as the server keeps it."""
        return self.source


@dataclass(frozen=True)
class Answer:
    """An answer with its citations, token usage (and budget report) and timings."""

    answer: str
    citations: list[Citation]
    usage: dict[str, Any]
    timings: dict[str, float]
    model: str
    reasoning: str | None = None
    conversation_id: str | None = None
    turn: int | None = None
    rewritten_query: str | None = None
    rewrite: str | None = None

    @classmethod
    def from_json(cls, data: Json) -> Answer:
        """Build from the API's JSON."""
        return cls(
            answer=data["answer"],
            citations=[Citation.from_json(c) for c in data.get("citations", [])],
            usage=dict(data.get("usage") or {}),
            timings=dict(data.get("timings") or {}),
            model=data.get("model", ""),
            reasoning=data.get("reasoning"),
            conversation_id=data.get("conversation_id"),
            turn=data.get("turn"),
            rewritten_query=data.get("rewritten_query"),
            rewrite=data.get("rewrite"),
        )


@dataclass(frozen=True)
class ConversationTurn:
    """A question of a conversation, the standalone query it was searched as, its answer."""

    position: int
    question: str
    rewritten_query: str
    rewrite: str
    answer: str
    citations: list[Json]
    created_at: float

    @classmethod
    def from_json(cls, data: Json) -> ConversationTurn:
        """Build from the API's JSON."""
        return cls(
            position=data["position"],
            question=data["question"],
            rewritten_query=data["rewritten_query"],
            rewrite=data["rewrite"],
            answer=data["answer"],
            citations=list(data.get("citations", [])),
            created_at=data.get("created_at", 0.0),
        )


@dataclass(frozen=True)
class Conversation:
    """A conversation over a collection; ask in it with ``query(..., conversation_id=id)``."""

    id: str
    collection: str
    created_at: float
    turns: list[ConversationTurn]

    @classmethod
    def from_json(cls, data: Json) -> Conversation:
        """Build from the API's JSON."""
        return cls(
            id=data["id"],
            collection=data["collection"],
            created_at=data.get("created_at", 0.0),
            turns=[ConversationTurn.from_json(t) for t in data.get("turns", [])],
        )


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer's text."""

    text: str


@dataclass(frozen=True)
class PromptMessage:
    """A rendered prompt message."""

    role: str
    content: str


@dataclass(frozen=True)
class PromptPreview:
    """The messages and token budget a query would use, and the chunks it would cite."""

    messages: list[PromptMessage]
    usage: dict[str, Any]
    citations: list[Citation]
    template: str

    @classmethod
    def from_json(cls, data: Json) -> PromptPreview:
        """Build from the API's JSON."""
        return cls(
            messages=[PromptMessage(m["role"], m["content"]) for m in data["messages"]],
            usage=dict(data.get("usage") or {}),
            citations=[Citation.from_json(c) for c in data.get("citations", [])],
            template=data["template"],
        )


@dataclass(frozen=True)
class PromptInfo:
    """A prompt template and its parameters."""

    name: str
    description: str
    parameters: dict[str, str]
    max_examples: int | None
    reasoning: bool
    source: str

    @classmethod
    def from_json(cls, data: Json) -> PromptInfo:
        """Build from the API's JSON."""
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            parameters=dict(data.get("parameters") or {}),
            max_examples=data.get("max_examples"),
            reasoning=bool(data.get("reasoning", False)),
            source=data.get("source", ""),
        )


@dataclass(frozen=True)
class Embeddings:
    """Unit-length vectors, one per input text, and the tokens the model read."""

    vectors: list[list[float]]
    model: str
    tokens: int = 0

    @classmethod
    def from_json(cls, data: Json) -> Embeddings:
        """Build from the API's JSON (OpenAI's embeddings shape)."""
        rows = sorted(data["data"], key=lambda item: item["index"])
        usage = data.get("usage") or {}
        return cls(
            [list(map(float, row["embedding"])) for row in rows],
            data.get("model", ""),
            int(usage.get("prompt_tokens", 0)),
        )
