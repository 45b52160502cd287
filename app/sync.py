"""``ragserver sync``: make a collection mirror a folder, over a running server's HTTP API.

Each file the sync uploads carries three metadata keys: ``sync_root`` (the folder's absolute
path), ``sync_path`` (the file's path relative to it, also its source name) and
``sync_sha256`` (the sha256 of its bytes). A pass lists the collection's documents whose
``sync_root`` is this folder, compares them with the files on disk and:

* uploads files it does not have (``created``) and files whose sha256 changed (``replaced``);
* deletes its documents whose file is gone (``deleted``); a file that reappears under another
  path with the same bytes is reported ``renamed`` (uploaded under its new path, the old one
  deleted);
* never touches a document without this folder's ``sync_root``: a local file whose source
  name is taken by such a document is reported as a ``conflict`` and left alone.

Unchanged files cost one hash each and no request. ``--watch`` repeats the pass whenever
``watchfiles`` reports changes, after they settle for ``--debounce-ms``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ingest.chunking import document_id_for
from ingest.results import collect_files, file_sha256

if TYPE_CHECKING:
    import httpx

SYNC_ROOT, SYNC_PATH, SYNC_SHA = "sync_root", "sync_path", "sync_sha256"
ActionKind = Literal["created", "replaced", "deleted", "renamed", "unchanged", "conflict", "failed"]
_PAGE = 1000


class SyncError(Exception):
    """The server cannot be reached or answered something a sync cannot go on from."""


@dataclass(frozen=True)
class SyncAction:
    """What a pass did (or, in a dry run, would do) with one file."""

    kind: ActionKind
    path: str
    detail: str = ""


@dataclass
class SyncReport:
    """The actions of one pass, in order."""

    actions: list[SyncAction] = field(default_factory=list)
    dry_run: bool = False

    def count(self, kind: ActionKind) -> int:
        """How many actions of ``kind``."""
        return sum(a.kind == kind for a in self.actions)

    def format(self) -> str:
        """One line per file that changed (or would), then the totals."""
        lines = [
            f"{'would be ' if self.dry_run else ''}{a.kind} {a.path}"
            + (f": {a.detail}" if a.detail else "")
            for a in self.actions
            if a.kind != "unchanged"
        ]
        kinds: list[ActionKind] = [
            "created", "replaced", "deleted", "renamed", "unchanged", "conflict", "failed"
        ]  # fmt: skip
        totals = ", ".join(f"{self.count(k)} {k}" for k in kinds)
        lines.append(f"sync{' (dry run)' if self.dry_run else ''}: {totals}")
        return "\n".join(lines)


class SyncApi:
    """The few calls a sync makes, on an ``httpx.Client`` whose base URL is the server's."""

    def __init__(self, http: httpx.Client, collection: str) -> None:
        """Talk to ``collection`` through ``http``."""
        self.http = http
        self.collection = collection
        self._docs = f"/v1/collections/{collection}/documents"

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise SyncError(
                f"cannot reach the server at {self.http.base_url} ({exc}); start it with "
                "'ragserver serve' or pass --server URL"
            ) from exc

    def _check(self, resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code >= 400:
            raise SyncError(f"{resp.request.method} {resp.request.url.path}: {_message(resp)}")
        return resp.json() if resp.content else {}

    def ensure_collection(self, create: bool) -> bool:
        """Return whether the collection exists, creating it when ``create``."""
        resp = self._call("GET", f"/v1/collections/{self.collection}")
        if resp.status_code == 404:
            if create:
                self._check(self._call("POST", "/v1/collections", json={"name": self.collection}))
                return True
            return False
        self._check(resp)
        return True

    def owned(self, root: str) -> dict[str, dict[str, Any]]:
        """This folder's documents in the collection, by their ``sync_path``."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            params = {"filter": json.dumps({SYNC_ROOT: root}), "limit": _PAGE, "offset": offset}
            page = self._check(self._call("GET", self._docs, params=params))
            for doc in page["documents"]:
                found[str(doc["metadata"].get(SYNC_PATH, ""))] = doc
            offset += len(page["documents"])
            if not page["documents"] or offset >= int(page["total"]):
                return found

    def holder(self, source: str) -> dict[str, Any] | None:
        """The document named ``source``, if the collection has one."""
        resp = self._call("GET", f"{self._docs}/{document_id_for(source)}")
        return None if resp.status_code == 404 else self._check(resp)

    def upload(self, path: Path, source: str, metadata: dict[str, str]) -> SyncAction | None:
        """Upload one file under ``source``; a failure comes back as a ``failed`` action."""
        with path.open("rb") as handle:
            resp = self._call(
                "POST",
                self._docs,
                files=[("files", (source, handle))],
                data={"metadata": json.dumps(metadata), "source": source},
            )
        if resp.status_code >= 500:
            raise SyncError(f"uploading {source}: {_message(resp)}")
        body = resp.json()
        files = body.get("files") or body.get("error", {}).get("detail", {}).get("files") or []
        if resp.status_code >= 400 or (files and files[0].get("status") == "failed"):
            error = files[0].get("error") if files else None
            reason = error.get("message") if isinstance(error, dict) else _message(resp)
            return SyncAction("failed", source, str(reason))
        return None

    def delete(self, document_id: str) -> None:
        """Delete one document (already gone is fine)."""
        resp = self._call("DELETE", f"{self._docs}/{document_id}")
        if resp.status_code != 404:
            self._check(resp)


def _message(resp: httpx.Response) -> str:
    try:
        error = resp.json().get("error", {})
        return str(error.get("message") or resp.text)
    except (ValueError, AttributeError):
        return f"HTTP {resp.status_code}: {resp.text[:200]}"


@dataclass(frozen=True)
class SyncOptions:
    """What to mirror: the folder, the globs, and whether to write at all."""

    folder: Path
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    dry_run: bool = False


def sync_once(api: SyncApi, options: SyncOptions) -> SyncReport:
    """Run one pass (see the module docstring) and return what it did.

    Raises:
        SyncError: the folder is missing, or the server is unreachable or refuses a call
            that is not about one file.
    """
    folder = options.folder.resolve()
    if not folder.is_dir():
        raise SyncError(f"{options.folder} is not a folder")
    root = str(folder)
    report = SyncReport(dry_run=options.dry_run)
    exists = api.ensure_collection(create=not options.dry_run)
    remote = api.owned(root) if exists else {}
    files, _ = collect_files([folder], options.include, options.exclude)
    local = {source: (path, file_sha256(path)) for path, source in files}
    gone = {p: d for p, d in remote.items() if p not in local}
    gone_by_sha = {str(d["metadata"].get(SYNC_SHA)): p for p, d in gone.items()}
    for source, (path, sha) in local.items():
        known = remote.get(source)
        if known is not None and known["metadata"].get(SYNC_SHA) == sha:
            report.actions.append(SyncAction("unchanged", source))
            continue
        kind: ActionKind = "replaced" if known is not None else "created"
        detail = ""
        if known is None:
            if exists and api.holder(source) is not None:
                report.actions.append(
                    SyncAction("conflict", source, "a document of this name that this folder "
                               "did not upload is in the collection; left alone")
                )  # fmt: skip
                continue
            if sha in gone_by_sha:
                kind, detail = "renamed", f"from {gone_by_sha.pop(sha)}"
        failure = None
        if not options.dry_run:
            metadata = {SYNC_ROOT: root, SYNC_PATH: source, SYNC_SHA: sha}
            failure = api.upload(path, source, metadata)
        report.actions.append(failure or SyncAction(kind, source, detail))
    renamed = {a.detail.removeprefix("from ") for a in report.actions if a.kind == "renamed"}
    for source, doc in gone.items():
        if not options.dry_run:
            api.delete(str(doc["id"]))
        if source not in renamed:
            report.actions.append(SyncAction("deleted", source))
    return report


def watch_folder(
    run_pass: Callable[[], SyncReport],
    folder: Path,
    on_report: Callable[[SyncReport], None],
    stop: threading.Event | None = None,
    debounce_ms: int = 1600,
) -> None:
    """Run a pass now and again after each settled batch of changes, until ``stop`` is set."""
    from watchfiles import watch

    on_report(run_pass())
    for _changes in watch(folder, debounce=debounce_ms, stop_event=stop, raise_interrupt=False):
        on_report(run_pass())


def add_parser(sub: Any) -> None:
    """Add the ``sync`` subcommand to the ``ragserver`` parser."""
    sync = sub.add_parser("sync", help="make a collection mirror a folder (over HTTP)")
    sync.add_argument("folder", help="the folder to mirror (recursive)")
    sync.add_argument("--collection", default="default")
    sync.add_argument("--include", action="append", default=[], help="glob a file must match")
    sync.add_argument("--exclude", action="append", default=[], help="glob that skips a file")
    sync.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    sync.add_argument("--watch", action="store_true", help="keep following changes")
    sync.add_argument("--debounce-ms", type=int, default=1600, help="wait for changes to settle")
    sync.add_argument("--server", help="server URL (default: RAG_SERVER__HOST and __PORT)")
    sync.add_argument("--api-key", help="API key sent as a bearer token")


def run(args: argparse.Namespace, default_url: str) -> int:
    """Run ``ragserver sync``; returns the exit status (1 when a file failed)."""
    import httpx

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    options = SyncOptions(Path(args.folder), args.include, args.exclude, args.dry_run)
    timeout = httpx.Timeout(600.0, connect=10.0)
    with httpx.Client(
        base_url=args.server or default_url, headers=headers, timeout=timeout
    ) as http:
        api = SyncApi(http, args.collection)
        failed = False

        def show(report: SyncReport) -> None:
            nonlocal failed
            failed = failed or report.count("failed") > 0
            print(report.format(), flush=True)

        try:
            if args.watch:
                watch_folder(lambda: sync_once(api, options), Path(args.folder), show, None,
                             args.debounce_ms)  # fmt: skip
            else:
                show(sync_once(api, options))
        except SyncError as exc:
            print(f"ragserver sync: {exc}", file=sys.stderr)
            return 2
    return 1 if failed else 0
