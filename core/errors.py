"""The domain error hierarchy.

Every package below ``app/`` raises these and never imports FastAPI. ``app/errors.py`` maps each
class to an HTTP status in one place, walking the MRO, so a new subclass inherits the status of
its parent.
"""

from __future__ import annotations

from typing import Any


class RagError(Exception):
    """Base class of every error ragserver raises on purpose.

    Attributes:
        message: What went wrong and what to do about it, fit to show a user.
        detail: Optional structured context (file name, limits, ...).
    """

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


class InvalidRequest(RagError):
    """The request is malformed or asks for something impossible (422)."""


class NotFound(RagError):
    """Something named in the request does not exist (404)."""


class CollectionNotFound(NotFound):
    """The named collection does not exist."""


class DocumentNotFound(NotFound):
    """The named document does not exist in the collection."""


class ConversationNotFound(NotFound):
    """The named conversation does not exist (or was deleted)."""


class Conflict(RagError):
    """The request conflicts with the current state (409)."""


class CollectionExists(Conflict):
    """A collection of that name exists already."""


class IngestError(RagError):
    """A file could not be ingested; nothing of it was stored (422 unless a subclass says)."""


class UnsupportedFileType(IngestError):
    """The file's type is not one ragserver reads (415)."""


class EmptyDocument(IngestError):
    """The file holds no text to index (422)."""


class UnreadableDocument(IngestError):
    """The file is corrupt, encrypted or not decodable as its type claims (422)."""


class FileTooLarge(IngestError):
    """The file exceeds a configured size or parsing bound (413)."""


class EmbeddingMismatch(InvalidRequest):
    """Vectors of another model or dimension were written to a collection (422)."""


class FilterError(InvalidRequest):
    """A metadata filter is not valid in the filter language (422)."""


class ContextBudgetExceeded(InvalidRequest):
    """Even the fixed parts of a prompt do not fit the model's context window (422)."""


class TemplateNotFound(NotFound):
    """No prompt template of that name exists."""


class LimitExceeded(RagError):
    """A configured request limit was exceeded (413 or 422, see subclasses)."""


class PayloadTooLarge(LimitExceeded):
    """The request body or an upload is over its configured limit (413)."""


class Unauthorized(RagError):
    """No valid API key was presented (401)."""


class Forbidden(RagError):
    """The API key is valid but not allowed to do this (403)."""


class RateLimited(RagError):
    """The key has exceeded its rate limit (429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class Overloaded(RagError):
    """The server is at capacity; retry later (503)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class BackendUnavailable(RagError):
    """A backing service (vector database, model) is not reachable or not loaded (503)."""


class StoreLocked(BackendUnavailable):
    """The store's files are held by another process (a running server, with FAISS) (503)."""


class ProviderError(RagError):
    """An upstream model provider failed (502)."""


class ProviderTimeout(ProviderError):
    """An upstream model provider did not answer in time (504)."""


class ConfigurationError(RagError):
    """The server's configuration is invalid; raised at start-up."""
