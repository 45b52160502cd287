"""``ragserver ingest|search|ask --server URL``: the same commands over a running server's API.

With FAISS a running server holds the data directory's collections, so a second process may
not open them; through ``--server`` the command sends its work to that server instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from tqdm import tqdm

from ingest.cli import skipped_line
from ingest.results import collect_files_named

UPLOAD_BATCH_FILES = 16
UPLOAD_BATCH_BYTES = 32_000_000


class CliError(Exception):
    """A failure the command reports in one line (``ragserver: <message>``)."""


@dataclass
class RemoteSummary:
    """What an upload over HTTP did, file by file."""

    counts: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: dict[str, Any]) -> None:
        """Count one file's result as the server reported it."""
        status = str(result.get("status", "failed"))
        self.counts[status] = self.counts.get(status, 0) + 1
        if status in ("created", "replaced"):
            self.chunks += int(result.get("chunks") or 0)
        if status == "failed":
            error = result.get("error") or {}
            self.failed.append((str(result.get("filename", "")), str(error.get("message", ""))))


class RemoteClient:
    """A thin client of the ragserver HTTP API that turns error answers into ``CliError``."""

    def __init__(self, base_url: str, api_key: str = "", timeout: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return the answer, whatever its status.

        Raises:
            CliError: the server cannot be reached.
        """
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the server at {self.base_url} ({exc}); start it with "
                "`ragserver serve` or check --server"
            ) from exc

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return the decoded body; ``CliError`` unless the answer is 2xx."""
        response = self.call(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(error_message(response))
        return response.json()

    def collection(self, name: str) -> dict[str, Any] | None:
        """The collection's info, or None when it does not exist."""
        response = self.call("GET", f"/v1/collections/{name}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise CliError(error_message(response))
        return dict(response.json())

    def stream_events(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """POST ``body`` and yield the Server-Sent Events of the answer as (event, data)."""
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CliError(error_message(response))
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        yield event, json.loads(line[5:].strip())
        except httpx.HTTPError as exc:
            raise CliError(f"the server at {self.base_url} stopped answering ({exc})") from exc


def error_message(response: httpx.Response) -> str:
    """The message of a problem-JSON answer, or the status and text of any other."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code}: {response.text[:200]}"


def ensure_collection(client: RemoteClient, name: str, create: bool, out: TextIO) -> None:
    """Check that ``name`` exists; create it only when ``create`` is set (else ``CliError``)."""
    if client.collection(name) is not None:
        return
    if not create:
        names = [c["name"] for c in client.json("GET", "/v1/collections")["collections"]]
        raise CliError(missing_collection_message(name, names))
    client.json("POST", "/v1/collections", json={"name": name})
    print(f"created collection '{name}'", file=out)


def missing_collection_message(name: str, existing: Sequence[str]) -> str:
    """Why ingesting into a missing collection stopped, and how to create it on purpose."""
    return (
        f"collection '{name}' does not exist (existing: {', '.join(existing) or 'none'}); "
        "check the name, or add --create to create it"
    )


def batches(files: list[tuple[Path, str]]) -> Iterator[list[tuple[Path, str]]]:
    """Group files into uploads of at most ``UPLOAD_BATCH_FILES`` files or about 32 MB."""
    batch: list[tuple[Path, str]] = []
    size = 0
    for path, source in files:
        length = path.stat().st_size if path.is_file() else 0
        if batch and (len(batch) >= UPLOAD_BATCH_FILES or size + length > UPLOAD_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((path, source))
        size += length
    if batch:
        yield batch


def remote_ingest(
    client: RemoteClient,
    paths: Sequence[Path],
    collection: str,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    create: bool = False,
    out: TextIO | None = None,
) -> RemoteSummary:
    """Upload files and folders to the server, keeping folder-relative paths as sources."""
    out = out or sys.stdout
    ensure_collection(client, collection, create, out)
    files, skipped = collect_files_named(paths, include, exclude)
    summary = RemoteSummary(skipped=skipped)
    for path, source in files:
        if not path.is_file():
            summary.failed.append((source, f"{path}: no such file"))
            summary.counts["failed"] = summary.counts.get("failed", 0) + 1
    readable = [(p, s) for p, s in files if p.is_file()]
    with tqdm(total=len(readable), unit="file", disable=not readable) as bar:
        for batch in batches(readable):
            upload_batch(client, collection, batch, summary)
            bar.update(len(batch))
    return summary


def upload_batch(
    client: RemoteClient, collection: str, batch: list[tuple[Path, str]], summary: RemoteSummary
) -> None:
    """Upload one batch of files and count their results into ``summary``."""
    with ExitStack() as stack:
        parts = [
            ("files", (source, stack.enter_context(path.open("rb")))) for path, source in batch
        ]
        response = client.call("POST", f"/v1/collections/{collection}/documents", files=parts)
    try:
        body = response.json()
    except ValueError:
        raise CliError(error_message(response)) from None
    # A mixed upload answers 207 with "files"; one where every file failed answers the first
    # failure's status with the files in the error's detail.
    results = body.get("files") or body.get("error", {}).get("detail", {}).get("files")
    if results is None:
        raise CliError(error_message(response))
    for result in results:
        summary.add(result)


def format_remote_summary(summary: RemoteSummary) -> str:
    """The lines ``ingest --server`` prints: counts, then each failed file and why."""
    counts = ", ".join(
        f"{status} {summary.counts.get(status, 0)}"
        for status in ("created", "replaced", "unchanged", "failed")
    )
    lines = [
        f"files: {sum(summary.counts.values())} ({counts}, skipped {len(summary.skipped)})",
        f"chunks: {summary.chunks}",
    ]
    if summary.skipped:
        lines.append(skipped_line(summary.skipped))
    if summary.failed:
        lines.append("failed:")
        lines.extend(
            f"  {reason}" if reason.startswith(source) else f"  {source}: {reason}"
            for source, reason in summary.failed
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class HitLine:
    """What the CLI prints of a hit, wherever it came from."""

    score: float
    source: str
    heading_path: str
    text: str


def print_hits(hits: Sequence[HitLine], out: TextIO | None = None) -> None:
    """Print hits, best first, or say that none matched."""
    out = out or sys.stdout
    if not hits:
        print("no hits", file=out)
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:2d}. {hit.score:.3f}  {hit.source}  {hit.heading_path}", file=out)
        print("    " + hit.text[:200].replace("\n", " "), file=out)


def empty_collection_message(name: str) -> str:
    """What search and ask say about a collection without chunks."""
    return (
        f"collection '{name}' is empty: nothing to search; add files with "
        f"`ragserver ingest PATH --collection {name}`"
    )


def remote_search(
    client: RemoteClient,
    collection: str,
    query: str,
    *,
    top_k: int,
    filter: dict[str, Any] | None,
    mode: str | None,
) -> tuple[list[HitLine], list[str]]:
    """Search through the server; return the hits and the server's warnings."""
    info = client.collection(collection)
    if info is None:
        raise CliError(error_message(client.call("GET", f"/v1/collections/{collection}")))
    if not info.get("chunks"):
        raise CliError(empty_collection_message(collection))
    body: dict[str, Any] = {"query": query, "top_k": top_k, "filter": filter}
    if mode:
        body["mode"] = mode
    answer = client.json("POST", f"/v1/collections/{collection}/search", json=body)
    hits = [
        HitLine(
            float(h["score"]),
            str(h.get("source") or h.get("filename", "")),
            str(h.get("heading_path", "")),
            str(h.get("text", "")),
        )
        for h in answer["hits"]
    ]
    return hits, [str(w) for w in answer.get("warnings", [])]


def citation_lines(citations: Sequence[dict[str, Any]]) -> list[str]:
    """The ``Sources:`` lines under an answer; ``*`` marks the chunks the answer cites."""
    lines = []
    for c in citations:
        page = f" p.{c['page']}" if c.get("page") else ""
        mark = "*" if c.get("cited") else " "
        source = c.get("source") or c.get("filename", "")
        lines.append(
            f" {mark}[{c['number']}] {source}{page}  {c.get('heading_path', '')}  "
            f"({float(c['score']):.3f})"
        )
    return lines


def remote_ask(
    client: RemoteClient,
    collection: str,
    question: str,
    *,
    strategy: str | None,
    top_k: int | None,
    stream: bool,
    out: TextIO | None = None,
) -> None:
    """Ask through the server and print the answer (as it comes, with ``stream``) and sources."""
    out = out or sys.stdout
    body: dict[str, Any] = {"question": question, "stream": stream}
    if strategy:
        body["strategy"] = strategy
    if top_k:
        body["top_k"] = top_k
    path = f"/v1/collections/{collection}/query"
    if not stream:
        result = client.json("POST", path, json=body)
        print(result["answer"], file=out)
    else:
        result = None
        for event, data in client.stream_events(path, body):
            if event == "delta":
                print(data.get("text", ""), end="", flush=True, file=out)
            elif event == "done":
                result = data
            elif event == "error":
                print(file=out)
                raise CliError(str(data.get("error", {}).get("message", data)))
        print(file=out)
        if result is None:
            raise CliError("the server ended the answer without its final event")
    print("\nSources:", file=out)
    for line in citation_lines(result.get("citations", [])):
        print(line, file=out)
