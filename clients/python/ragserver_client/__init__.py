"""The Python client of ragserver: ``Client``, ``AsyncClient``, typed results and errors.

LangChain and LlamaIndex retrievers live in ``ragserver_client.langchain`` and
``ragserver_client.llama_index`` (install the ``langchain`` or ``llama-index`` extra).
"""

from ._core import FileInput, QueryOptions, SearchOptions
from .async_client import AsyncClient
from .client import Client
from .errors import (
    AuthenticationError,
    ConflictError,
    GatewayTimeoutError,
    InvalidRequestError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RagServerError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    UpstreamError,
)
from .models import (
    Answer,
    Chunk,
    Citation,
    Collection,
    Conversation,
    ConversationTurn,
    Delta,
    Document,
    DocumentPage,
    Embeddings,
    FileResult,
    Hit,
    Job,
    PromptInfo,
    PromptPreview,
    SearchResult,
    UploadResult,
)

__version__ = "0.1.0"
__all__ = [
    "Answer",
    "AsyncClient",
    "AuthenticationError",
    "Chunk",
    "Citation",
    "Client",
    "Collection",
    "ConflictError",
    "Conversation",
    "ConversationTurn",
    "Delta",
    "Document",
    "DocumentPage",
    "Embeddings",
    "FileInput",
    "FileResult",
    "GatewayTimeoutError",
    "Hit",
    "InvalidRequestError",
    "Job",
    "JobFailedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PromptInfo",
    "PromptPreview",
    "QueryOptions",
    "RagServerError",
    "RateLimitError",
    "SearchOptions",
    "SearchResult",
    "ServerError",
    "ServiceUnavailableError",
    "UnsupportedMediaTypeError",
    "UploadResult",
    "UpstreamError",
]
