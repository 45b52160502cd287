"""Request and response models of the HTTP API (kept apart from internal dataclasses)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.conversation_schemas import ConversationTurnFacts, FollowupFacts

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{1,61}[A-Za-z0-9]$"
COLLECTION_NAME_RULE = "3 to 63 letters, digits, '_' or '-', starting and ending alphanumeric."
# What each pattern of a field means, in words, for error messages.
PATTERN_WORDING = {
    COLLECTION_NAME_PATTERN: "a collection name is "
    + COLLECTION_NAME_RULE.rstrip(".")
    + " (e.g. team-docs)",
}
MetadataValue = str | int | float | bool
SOURCE_DOC = (
    "The document's source: its file name, or its path relative to the folder or as sent "
    "(a/README.md); filter on it as `source`."
)
FILENAME_DOC = "Deprecated alias of `source` (same value), kept for older clients."


class SourceNamed(BaseModel):
    """A model naming its document's source as ``source``, with ``filename`` as an alias."""

    source: str = Field("", description=SOURCE_DOC)
    filename: str = Field("", description=FILENAME_DOC, deprecated=True)

    @model_validator(mode="before")
    @classmethod
    def _same_name(cls, data: Any) -> Any:
        """Fill whichever of ``source`` and ``filename`` was not given from the other."""
        if isinstance(data, dict):
            name = data.get("source") or data.get("filename") or ""
            data = {**data, "source": name, "filename": name}
        return data


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
        description=COLLECTION_NAME_RULE,
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
    warnings: list[str] = Field(
        default_factory=list,
        description="What could not be read although the file was stored (an unreadable "
        "scanned page), one message each.",
    )


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


class DocumentOut(SourceNamed):
    """A stored document."""

    id: str
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
        None,
        description="Metadata filter on the names hits show (source, page, heading_path, "
        "document_id, your metadata): equality, $in, $ne, $gt/$gte/$lt/$lte, $and/$or.",
    )
    score_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Leave out dense candidates below this cosine similarity. In dense mode "
        "that is the score shown; in hybrid mode it applies before fusion (BM25 candidates have "
        "no cosine and are kept) and the answer says so in `warnings`; bm25 mode ignores it.",
    )
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(
        None,
        description="Retrieval mode; the server's default when omitted. A hit's score is the "
        "cosine similarity (dense), the BM25 score (bm25) or the reciprocal-rank-fusion score "
        "(hybrid); the cross-encoder's score when reranked.",
    )
    mmr: bool = Field(False, description="Diversify the hits with maximal marginal relevance.")
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="MMR trade-off: 1 is pure relevance."
    )
    rerank: bool | None = Field(
        None,
        description="Rerank with the cross-encoder: null uses it when one is configured; "
        "true without one is an error.",
    )


class HitOut(SourceNamed):
    """One search hit."""

    chunk_id: str
    document_id: str
    page: int | None
    heading_path: str
    text: str
    score: float


class SearchResponse(BaseModel):
    """Search hits, best first."""

    query: str
    mode: str
    score_type: Literal["cosine", "bm25", "rrf", "cross-encoder"] = Field(
        description="What each hit's score is: cosine similarity (dense), BM25 score (bm25), "
        "reciprocal-rank-fusion score (hybrid, at most about 0.03) or cross-encoder score."
    )
    hits: list[HitOut]
    warnings: list[str] = Field(
        default_factory=list,
        description="Why the hits may not be what was asked: a filter key no chunk has, or a "
        "score_threshold that compared another score than the one shown.",
    )


class ExampleIn(BaseModel):
    """A few-shot example."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class HistoryMessage(BaseModel):
    """An earlier turn of the conversation."""

    role: Literal["user", "assistant"]
    content: str


class LLMParams(BaseModel):
    """Per-request model options."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Model name; the server's model when omitted.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0 is greedy.")
    max_tokens: int | None = Field(None, ge=1, le=32768, description="Answer length limit.")


class QueryRequest(BaseModel):
    """Ask a question of a collection."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question.")
    strategy: str | None = Field(
        None, description="Prompt template: zero_shot, one_shot, few_shot, chain_of_thought..."
    )
    role: str | None = Field(
        None, max_length=2000, description='Who the assistant is, e.g. "a support engineer".'
    )
    examples: list[ExampleIn] | None = Field(
        None, description="Few-shot examples; the configured ones when omitted."
    )
    history: list[HistoryMessage] = Field(
        default_factory=list, description="Earlier turns, oldest first."
    )
    top_k: int | None = Field(None, ge=1, description="Chunks to retrieve.")
    filter: dict[str, Any] | None = Field(None, description="Metadata filter for retrieval.")
    mode: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="Retrieval mode.")
    params: dict[str, str] | None = Field(None, description="Values for template parameters.")
    llm: LLMParams | None = Field(None, description="Model options.")
    stream: bool = Field(False, description="Answer as Server-Sent Events.")
    answer_mode: Literal["extractive", "generative", "auto"] | None = Field(
        None,
        description="extractive: the best evidence sentences, cited, no model call; generative: "
        "the model writes the answer; auto: extractive with the bundled SmolLM2-135M, generative "
        "otherwise. The server's default (RAG_LLM__ANSWER_MODE) when omitted.",
    )
    conversation_id: str | None = Field(
        None,
        description="Ask within this conversation (POST /v1/conversations): a follow-up is "
        "rewritten into a standalone query using its earlier turns, and the turn is stored.",
    )


class CitationOut(SourceNamed):
    """A chunk the answer may cite as [number]; only chunks that were in the prompt."""

    number: int
    chunk_id: str
    document_id: str
    page: int | None
    heading_path: str
    score: float
    quote: str
    cited: bool = Field(description="The answer refers to it as [number].")


class EvidenceOut(BaseModel):
    """A sentence of a cited chunk that supports the answer."""

    citation: int = Field(description="The chunk's citation number [n].")
    start: int = Field(description="Offset of the sentence in the chunk's text (its quote).")
    end: int = Field(description="Offset just past the sentence: quote[start:end] == text.")
    text: str
    score: float = Field(description="Combined embedding and term-overlap score; higher is better.")


class AnswerFacts(BaseModel):
    """How an answer was made: its evidence, the mode used, whether it abstained."""

    evidence: list[EvidenceOut] = Field(
        default_factory=list, description="The best sentences of the cited chunks, best first."
    )
    answer_mode: Literal["extractive", "generative"] = Field(
        "generative", description="How the answer was made."
    )
    abstained: bool = Field(
        False, description="The passages did not answer the question; no model was called."
    )
    confidence: float | None = Field(
        None, description="Calibrated probability that the passages answer the question."
    )


class QueryResponse(AnswerFacts, ConversationTurnFacts):
    """An answer with citations, evidence, token usage and timings."""

    answer: str
    reasoning: str | None = None
    citations: list[CitationOut]
    usage: dict[str, Any]
    timings: dict[str, float]
    model: str


class ChatMessage(BaseModel):
    """A rendered prompt message."""

    role: str
    content: str


class PreviewResponse(BaseModel):
    """The messages a query would send, and the budget report, without calling a model."""

    messages: list[ChatMessage]
    usage: dict[str, Any]
    citations: list[CitationOut]
    template: str


class PromptPreviewRequest(QueryRequest):
    """Deprecated body of ``POST /v1/prompts/preview``, which names its collection in it.

    ``POST /v1/collections/{name}/prompts/preview`` takes the collection in the path, as
    ``/query`` does, and a plain ``QueryRequest``.
    """

    collection: str = Field(
        "default", description="Collection to retrieve from (the path's, in the new route)."
    )


class PromptInfoOut(BaseModel):
    """A prompt template."""

    name: str
    description: str
    parameters: dict[str, str]
    max_examples: int | None
    reasoning: bool
    source: str


class PromptList(BaseModel):
    """Every prompt template."""

    prompts: list[PromptInfoOut]


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    return {code: {"model": Problem} for code in (*codes, 422, 503)}


class OpenAIMessage(BaseModel):
    """A chat message as the OpenAI API sends it."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; ``model`` names a collection (``rag:default``)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="rag:COLLECTION (or just the collection name).")
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    answer_mode: Literal["extractive", "generative", "auto"] | None = Field(
        None,
        description="extractive: the best evidence sentences, cited, no model call; generative: "
        "the model writes the answer; auto: extractive with the bundled SmolLM2-135M, generative "
        "otherwise. The server's default (RAG_LLM__ANSWER_MODE) when omitted.",
    )


class ChatChoiceMessage(BaseModel):
    """The assistant's reply."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    """One choice of a chat completion."""

    index: int
    message: ChatChoiceMessage
    finish_reason: str


class ChatUsage(BaseModel):
    """Token counts, OpenAI style."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(AnswerFacts, FollowupFacts):
    """OpenAI's chat completion response, with the sources used in ``sources``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    sources: list[CitationOut] = Field(description="Chunks that were in the prompt.")


class ModelCard(BaseModel):
    """A model, OpenAI style: one per collection."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragserver"


class ModelList(BaseModel):
    """Every collection as a model."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request."""

    model_config = ConfigDict(extra="allow")

    input: str | list[Any] = Field(
        description="A text or a list of texts (token-id arrays are refused: send the text)."
    )
    model: str = Field(description="The server's embedding model (GET /v1/collections shows it).")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: little-endian float32 bytes."
    )
    dimensions: int | None = Field(
        None, ge=1, description="Accepted only when it is the model's own dimension."
    )
    truncate: bool = Field(
        False,
        description="ragserver's extension: cut texts longer than the model reads instead of "
        "refusing them.",
    )


class EmbeddingItem(BaseModel):
    """One text's vector."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    """Tokens the model read, OpenAI style."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    """OpenAI's embeddings response: one unit-length vector per input, in order."""

    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage
