"""``AsyncClient``: the asyncio client of the ragserver API (the same methods as ``Client``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from ._core import (
    DEFAULT_TIMEOUT,
    Api,
    Call,
    FileInput,
    Progress,
    QueryOptions,
    SearchOptions,
    SSEDecoder,
    auth_headers,
    check_job,
    multipart,
    request_kwargs,
    retry_delay,
    should_retry,
    stream_ended,
    stream_item,
)
from .errors import error_from_response
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


class AsyncClient:
    """An asyncio client of one ragserver; ``Client``'s methods, awaited.

    Errors the server answers are raised as ``RagServerError`` subclasses carrying its
    ``type``, ``message`` and ``detail``; 429 and 503 answers are retried up to
    ``max_retries`` times, after the server's ``Retry-After`` (at most ``max_retry_wait``
    seconds) or an exponential backoff. Use it as a context manager, or call ``close()``.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        api_key: Sent as ``Authorization: Bearer <key>`` when the server requires keys.
        timeout: Seconds (or an ``httpx.Timeout``) per request; answers take a while on a CPU.
        max_retries: Retries of a 429 or 503 answer.
        max_retry_wait: Longest wait before a retry, in seconds.
        headers: Extra headers for every request.
        transport: An ``httpx`` transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=auth_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    @asynccontextmanager
    async def _open(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        """Send a call, retrying 429/503; yield the successful answer with its body unread."""
        attempt = 0
        while True:
            with multipart(call.files) as files:
                request = self._http.build_request(**request_kwargs(call, files))
                response = await self._http.send(request, stream=True)
            try:
                if not should_retry(response, attempt, self.max_retries):
                    if response.is_error:
                        await response.aread()
                        raise error_from_response(response)
                    yield response
                    return
                delay = retry_delay(response, attempt, self.max_retry_wait)
            finally:
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    async def _send(self, call: Call[T]) -> T:
        async with self._open(call) as response:
            await response.aread()
            return call.parse(response)

    async def ready(self) -> bool:
        """Whether the server has loaded its models and store (``GET /readyz``)."""
        response = await self._http.get("/readyz")
        return response.status_code == 200

    async def list_collections(self) -> list[Collection]:
        """The collections the API key may use."""
        return await self._send(Api.list_collections())

    async def create_collection(self, name: str) -> Collection:
        """Create a collection (3-63 letters, digits, ``_`` or ``-``)."""
        return await self._send(Api.create_collection(name))

    async def get_collection(self, name: str) -> Collection:
        """A collection's size and embedding model."""
        return await self._send(Api.get_collection(name))

    async def delete_collection(self, name: str) -> None:
        """Delete a collection and every document in it."""
        await self._send(Api.delete_collection(name))

    async def upload(
        self,
        collection: str,
        files: FileInput | Sequence[FileInput],
        *,
        metadata: Mapping[str, Any] | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        progress: Progress | None = None,
        poll_interval: float = 0.5,
    ) -> UploadResult:
        """Upload and ingest files: paths, or ``(filename, bytes or binary file)`` pairs.

        Without ``progress`` the server ingests before it answers. With it, the upload runs
        as a background job, polled every ``poll_interval`` seconds; ``progress(job)`` is
        called after each poll (files done, chunks embedded).

        Raises:
            JobFailedError: the background job failed as a whole.
        """
        if progress is None:
            call = Api.upload(collection, files, metadata, chunk_size, chunk_overlap, True)
            result: UploadResult = await self._send(call)
            return result
        job = await self.upload_background(
            collection, files, metadata=metadata, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
        job = await self.wait_for_job(job, progress=progress, poll_interval=poll_interval)
        return UploadResult(job.collection, job.files)

    async def upload_background(
        self,
        collection: str,
        files: FileInput | Sequence[FileInput],
        *,
        metadata: Mapping[str, Any] | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
    ) -> Job:
        """Upload files to be ingested as a background job; returns the job at once."""
        job: Job = await self._send(
            Api.upload(collection, files, metadata, chunk_size, chunk_overlap, False)
        )
        return job

    async def get_job(self, job_id: str) -> Job:
        """A background upload's state and progress."""
        return await self._send(Api.get_job(job_id))

    async def wait_for_job(
        self,
        job: Job | str,
        *,
        progress: Progress | None = None,
        poll_interval: float = 0.5,
        timeout: float | None = None,
    ) -> Job:
        """Poll a job until it succeeds or fails, calling ``progress(job)`` after each poll.

        Raises:
            JobFailedError: the job failed.
            TimeoutError: not finished within ``timeout`` seconds (the job runs on).
        """
        job_id = job if isinstance(job, str) else job.id
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = await self.get_job(job_id)
            if progress is not None:
                progress(current)
            if current.finished:
                return check_job(current)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {current.state} after {timeout} s")
            await asyncio.sleep(poll_interval)

    async def list_documents(
        self,
        collection: str,
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> DocumentPage:
        """A page of a collection's documents, optionally filtered by metadata."""
        return await self._send(Api.list_documents(collection, filter, limit, offset))

    async def get_document(self, collection: str, document_id: str) -> Document:
        """A document's metadata, hash and chunk count."""
        return await self._send(Api.get_document(collection, document_id))

    async def get_chunks(self, collection: str, document_id: str) -> list[Chunk]:
        """A document's chunks in order."""
        return await self._send(Api.get_chunks(collection, document_id))

    async def delete_document(self, collection: str, document_id: str) -> None:
        """Delete a document and all its chunks."""
        await self._send(Api.delete_document(collection, document_id))

    async def search(
        self, collection: str, query: str, **options: Unpack[SearchOptions]
    ) -> SearchResult:
        """The chunks most relevant to ``query``, best first (``top_k``, ``filter``, ``mode``)."""
        return await self._send(Api.search(collection, query, options))

    async def query(
        self, collection: str, question: str, **options: Unpack[QueryOptions]
    ) -> Answer:
        """Answer a question from a collection, with citations, usage and timings."""
        return await self._send(Api.query(collection, question, options))

    async def query_stream(
        self, collection: str, question: str, **options: Unpack[QueryOptions]
    ) -> AsyncIterator[Delta | Answer]:
        """Answer a question as it is generated: ``Delta`` pieces, then the final ``Answer``.

        Raises:
            RagServerError: an error answer, or a failure after the stream started.
        """
        call = Api.query(collection, question, options, stream=True)
        async with self._open(call) as response:
            decoder = SSEDecoder()
            async for line in response.aiter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                item = stream_item(*event)
                yield item
                if isinstance(item, Answer):
                    return
        raise stream_ended()

    async def create_conversation(self, collection: str = "default") -> Conversation:
        """Start a conversation; follow-ups asked with its id are rewritten and kept."""
        return await self._send(Api.create_conversation(collection))

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """A conversation and its turns (questions, rewritten queries, answers)."""
        return await self._send(Api.get_conversation(conversation_id))

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation and the text of its turns."""
        await self._send(Api.delete_conversation(conversation_id))

    async def list_prompts(self) -> list[PromptInfo]:
        """The prompt templates and their parameters."""
        return await self._send(Api.list_prompts())

    async def preview_prompt(
        self, collection: str, question: str, **options: Unpack[QueryOptions]
    ) -> PromptPreview:
        """The messages and token budget a question would use, without calling a model."""
        return await self._send(Api.preview_prompt(collection, question, options))

    async def embed(self, texts: str | Sequence[str], model: str) -> Embeddings:
        """Embed texts with the server's model (``POST /v1/embeddings``)."""
        return await self._send(Api.embed(texts, model))
