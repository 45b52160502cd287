"""What the sync and async clients share: each API call as data, retries, uploads, SSE.

A ``Call`` says which request to send and how to read its answer; ``Client`` and
``AsyncClient`` only send it (with retries) and so cannot drift apart.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypedDict, TypeVar
from urllib.parse import quote

import httpx

from .errors import JobFailedError, RagServerError, error_from_body
from .models import (
    Answer,
    Chunk,
    Collection,
    Conversation,
    Delta,
    Document,
    DocumentPage,
    Embeddings,
    Job,
    PromptInfo,
    PromptPreview,
    SearchResult,
    UploadResult,
)

T = TypeVar("T")
Mode = Literal["dense", "bm25", "hybrid"]
FileInput = str | os.PathLike[str] | tuple[str, bytes] | tuple[str, IO[bytes]]
"""A file to upload: a path, or ``(filename, bytes)``, or ``(filename, binary file object)``."""
Progress = Callable[[Job], None]
RETRY_STATUSES = frozenset({429, 503})
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class SearchOptions(TypedDict, total=False):
    """Options of a search (every one optional; the server's defaults otherwise)."""

    top_k: int
    filter: dict[str, Any] | None
    mode: Mode | None
    score_threshold: float | None
    mmr: bool
    mmr_lambda: float
    rerank: bool | None


class QueryOptions(TypedDict, total=False):
    """Options of a question (every one optional; the server's defaults otherwise).

    ``model``, ``temperature`` and ``max_tokens`` go to the answering model; the rest shape
    retrieval and the prompt (see ``POST /v1/collections/{name}/query``).
    """

    strategy: str
    role: str
    examples: list[dict[str, str]]
    history: list[dict[str, str]]
    top_k: int
    filter: dict[str, Any] | None
    mode: Mode | None
    params: dict[str, str]
    model: str
    temperature: float
    max_tokens: int
    conversation_id: str


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its successful answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: Sequence[FileInput] | None = None


def _name(value: str) -> str:
    return quote(value, safe="")


def _none(_: httpx.Response) -> None:
    return None


def _collections(response: httpx.Response) -> list[Collection]:
    return [Collection.from_json(c) for c in response.json()["collections"]]


def _chunks(response: httpx.Response) -> list[Chunk]:
    return [Chunk.from_json(c) for c in response.json()["chunks"]]


def _prompts(response: httpx.Response) -> list[PromptInfo]:
    return [PromptInfo.from_json(p) for p in response.json()["prompts"]]


def _reader(cls: Any) -> Callable[[httpx.Response], Any]:
    return lambda response: cls.from_json(response.json())


def _upload_fields(
    metadata: Mapping[str, Any] | None, chunk_size: int | None, chunk_overlap: int | None
) -> dict[str, str]:
    fields = {"metadata": json.dumps(dict(metadata))} if metadata else {}
    if chunk_size is not None:
        fields["chunk_size"] = str(chunk_size)
    if chunk_overlap is not None:
        fields["chunk_overlap"] = str(chunk_overlap)
    return fields


class Api:
    """Builds the ``Call`` of each API operation (shared by both clients)."""

    @staticmethod
    def list_collections() -> Call[list[Collection]]:
        """``GET /v1/collections``."""
        return Call("GET", "/v1/collections", _collections)

    @staticmethod
    def create_collection(name: str) -> Call[Collection]:
        """``POST /v1/collections``."""
        return Call("POST", "/v1/collections", _reader(Collection), json={"name": name})

    @staticmethod
    def get_collection(name: str) -> Call[Collection]:
        """``GET /v1/collections/{name}``."""
        return Call("GET", f"/v1/collections/{_name(name)}", _reader(Collection))

    @staticmethod
    def delete_collection(name: str) -> Call[None]:
        """``DELETE /v1/collections/{name}``."""
        return Call("DELETE", f"/v1/collections/{_name(name)}", _none)

    @staticmethod
    def upload(
        collection: str,
        files: FileInput | Sequence[FileInput],
        metadata: Mapping[str, Any] | None,
        chunk_size: int | None,
        chunk_overlap: int | None,
        wait: bool,
    ) -> Call[Any]:
        """``POST /v1/collections/{name}/documents`` (201 or 207 UploadResult, or 202 Job)."""
        items: list[FileInput] = (
            list(files) if isinstance(files, list | tuple) and not _is_pair(files) else [files]  # type: ignore[list-item]
        )
        return Call(
            "POST",
            f"/v1/collections/{_name(collection)}/documents",
            _reader(UploadResult if wait else Job),
            params={"wait": "true" if wait else "false"},
            data=_upload_fields(metadata, chunk_size, chunk_overlap),
            files=items,
        )

    @staticmethod
    def get_job(job_id: str) -> Call[Job]:
        """``GET /v1/jobs/{id}``."""
        return Call("GET", f"/v1/jobs/{_name(job_id)}", _reader(Job))

    @staticmethod
    def list_documents(
        collection: str, filter: Mapping[str, Any] | None, limit: int, offset: int
    ) -> Call[DocumentPage]:
        """``GET /v1/collections/{name}/documents``."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if filter:
            params["filter"] = json.dumps(dict(filter))
        path = f"/v1/collections/{_name(collection)}/documents"
        return Call("GET", path, _reader(DocumentPage), params=params)

    @staticmethod
    def get_document(collection: str, document_id: str) -> Call[Document]:
        """``GET /v1/collections/{name}/documents/{id}``."""
        path = f"/v1/collections/{_name(collection)}/documents/{_name(document_id)}"
        return Call("GET", path, _reader(Document))

    @staticmethod
    def get_chunks(collection: str, document_id: str) -> Call[list[Chunk]]:
        """``GET /v1/collections/{name}/documents/{id}/chunks``."""
        path = f"/v1/collections/{_name(collection)}/documents/{_name(document_id)}/chunks"
        return Call("GET", path, _chunks)

    @staticmethod
    def delete_document(collection: str, document_id: str) -> Call[None]:
        """``DELETE /v1/collections/{name}/documents/{id}``."""
        path = f"/v1/collections/{_name(collection)}/documents/{_name(document_id)}"
        return Call("DELETE", path, _none)

    @staticmethod
    def search(collection: str, query: str, options: SearchOptions) -> Call[SearchResult]:
        """``POST /v1/collections/{name}/search``."""
        body = {"query": query, **{k: v for k, v in options.items() if v is not None}}
        path = f"/v1/collections/{_name(collection)}/search"
        return Call("POST", path, _reader(SearchResult), json=body)

    @staticmethod
    def query(
        collection: str, question: str, options: QueryOptions, stream: bool = False
    ) -> Call[Answer]:
        """``POST /v1/collections/{name}/query`` (``stream``: Server-Sent Events)."""
        path = f"/v1/collections/{_name(collection)}/query"
        body = {**query_body(question, options), "stream": stream}
        return Call("POST", path, _reader(Answer), json=body)

    @staticmethod
    def create_conversation(collection: str) -> Call[Conversation]:
        """``POST /v1/conversations``."""
        body = {"collection": collection}
        return Call("POST", "/v1/conversations", _reader(Conversation), json=body)

    @staticmethod
    def get_conversation(conversation_id: str) -> Call[Conversation]:
        """``GET /v1/conversations/{id}``."""
        return Call("GET", f"/v1/conversations/{_name(conversation_id)}", _reader(Conversation))

    @staticmethod
    def delete_conversation(conversation_id: str) -> Call[None]:
        """``DELETE /v1/conversations/{id}``."""
        return Call("DELETE", f"/v1/conversations/{_name(conversation_id)}", _none)

    @staticmethod
    def list_prompts() -> Call[list[PromptInfo]]:
        """``GET /v1/prompts``."""
        return Call("GET", "/v1/prompts", _prompts)

    @staticmethod
    def preview_prompt(
        collection: str, question: str, options: QueryOptions
    ) -> Call[PromptPreview]:
        """``POST /v1/collections/{name}/prompts/preview``."""
        path = f"/v1/collections/{_name(collection)}/prompts/preview"
        return Call("POST", path, _reader(PromptPreview), json=query_body(question, options))

    @staticmethod
    def embed(texts: str | Sequence[str], model: str) -> Call[Embeddings]:
        """``POST /v1/embeddings``."""
        body = {"input": texts if isinstance(texts, str) else list(texts), "model": model}
        return Call("POST", "/v1/embeddings", _reader(Embeddings), json=body)


def _is_pair(value: object) -> bool:
    """Whether ``value`` is one ``(filename, content)`` pair rather than a list of files."""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and not isinstance(value[1], str)
    )


def query_body(question: str, options: QueryOptions) -> dict[str, Any]:
    """The JSON body of a question: model options go under ``llm``."""
    body: dict[str, Any] = {"question": question}
    llm: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in ("model", "temperature", "max_tokens"):
            llm[key] = value
        else:
            body[key] = value
    if llm:
        body["llm"] = llm
    return body


@contextmanager
def multipart(files: Sequence[FileInput] | None) -> Iterator[list[tuple[str, Any]] | None]:
    """Open the files of an upload for one attempt (paths are opened, and closed after)."""
    if files is None:
        yield None
        return
    with ExitStack() as stack:
        parts: list[tuple[str, Any]] = []
        for item in files:
            if isinstance(item, tuple):
                filename, content = item
                if not isinstance(content, bytes) and content.seekable():
                    content.seek(0)  # a retry sends the file again from its start
                parts.append(("files", (filename, content)))
            else:
                path = Path(item)
                parts.append(("files", (path.name, stack.enter_context(path.open("rb")))))
        yield parts


def request_kwargs(call: Call[Any], files: list[tuple[str, Any]] | None) -> dict[str, Any]:
    """The keyword arguments of ``httpx``'s ``build_request`` for a call."""
    return {
        "method": call.method,
        "url": call.path,
        "params": call.params,
        "json": call.json,
        "data": call.data,
        "files": files,
    }


def retry_delay(response: httpx.Response, attempt: int, max_wait: float) -> float:
    """Seconds to wait before retrying: the answer's ``Retry-After``, else exponential backoff.

    ``Retry-After`` may be seconds or an HTTP date; either is capped at ``max_wait``.
    """
    header = response.headers.get("retry-after", "").strip()
    seconds: float | None = None
    if header:
        try:
            seconds = float(header)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(header) if header else None
            if parsed is not None:
                seconds = parsed.timestamp() - time.time()
    if seconds is None:
        seconds = 0.5 * 2**attempt
    return min(max(0.0, seconds), max_wait)


def should_retry(response: httpx.Response, attempt: int, max_retries: int) -> bool:
    """Whether an answer is worth another attempt (429 or 503, retries left)."""
    return response.status_code in RETRY_STATUSES and attempt < max_retries


def auth_headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers every request carries: the API key as a Bearer token."""
    out = {"User-Agent": "ragserver-client/0.1", **(headers or {})}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


class SSEDecoder:
    """Turns the lines of a ``text/event-stream`` into ``(event, data)`` pairs."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """Take one line (without its newline); return an event when a blank line ends one."""
        if not line:
            event, data = self._event, self._data
            self._event, self._data = "message", []
            return (event, "\n".join(data)) if data else None
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None


def stream_item(event: str, data: str) -> Delta | Answer:
    """Turn one event of a streamed answer into a ``Delta`` or the final ``Answer``.

    Raises:
        RagServerError: an ``error`` event (the server failed after the stream started), or
            an event this client does not know.
    """
    payload = json.loads(data)
    if event == "delta":
        return Delta(str(payload.get("text", "")))
    if event == "done":
        return Answer.from_json(payload)
    if event == "error":
        error = payload.get("error") or {}
        raise error_from_body(int(error.get("status") or 0), payload)
    raise RagServerError(f"unexpected event {event!r} in the answer stream", type="StreamError")


def stream_ended() -> RagServerError:
    """The error for a stream that closed before its ``done`` event."""
    return RagServerError("the answer stream ended before its done event", type="StreamError")


def check_job(job: Job) -> Job:
    """Return a finished job, or raise ``JobFailedError`` for a failed one."""
    if job.state == "failed":
        raise JobFailedError(
            f"job {job.id} failed: {job.error or 'no reason given'}",
            type="JobFailed",
            detail={"job": job.id, "error": job.error},
        )
    return job
