"""``ragserver sync``: a collection mirrors a folder, over the HTTP API, leaving others alone."""

from __future__ import annotations

import io
import queue
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli import main
from app.settings import Settings
from app.sync import SYNC_ROOT, SyncApi, SyncOptions, SyncReport, sync_once, watch_folder
from tests.app.conftest import running_app
from tests.fakes import HashEmbedder
from tests.ingest.documents import image_bytes, make_xlsx, sentence_image
from tests.llms.openai_compat_server import LoopbackServer

DOCS = "/v1/collections/default/documents"


def listing(client: TestClient) -> dict[str, dict]:  # type: ignore[type-arg]
    body = client.get(DOCS, params={"limit": 1000}).json()
    return {d.get("source", d.get("filename")): d for d in body["documents"]}


def synced(client: TestClient, folder: Path) -> set[str]:
    root = str(folder.resolve())
    return {name for name, d in listing(client).items() if d["metadata"].get(SYNC_ROOT) == root}


def files_of(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()}


def kinds(report: SyncReport) -> dict[str, str]:
    return {a.path: a.kind for a in report.actions}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "notes"
    path.mkdir()
    return path


def test_the_collection_mirrors_the_folder_and_hand_uploads_survive(
    client: TestClient, folder: Path
) -> None:
    resp = client.post(
        DOCS, files=[("files", ("manual.txt", io.BytesIO(b"Uploaded by hand, not synced.")))]
    )
    assert resp.status_code == 201, resp.text
    api = SyncApi(client, "default")
    options = SyncOptions(folder)

    (folder / "kites.txt").write_text("Delta kites fly in light wind.")
    (folder / "boats.md").write_text("# Boats\n\nSailing boats need steady wind.")
    (folder / "stock.xlsx").write_bytes(make_xlsx())
    (folder / "scan.png").write_bytes(image_bytes(sentence_image(), "PNG"))
    report = sync_once(api, options)
    assert kinds(report) == dict.fromkeys(files_of(folder), "created")
    assert synced(client, folder) == files_of(folder)

    again = sync_once(api, options)
    assert kinds(again) == dict.fromkeys(files_of(folder), "unchanged")

    (folder / "kites.txt").write_text("Delta kites fly in light wind; box kites need more.")
    (folder / "boats.md").unlink()
    (folder / "scan.png").rename(folder / "scanned-note.png")
    (folder / "new.txt").write_text("A new note about lighthouses.")
    report = sync_once(api, options)
    assert kinds(report) == {
        "kites.txt": "replaced",
        "boats.md": "deleted",
        "scanned-note.png": "renamed",
        "new.txt": "created",
        "stock.xlsx": "unchanged",
    }
    assert synced(client, folder) == files_of(folder)
    chunks = client.get(f"{DOCS}/{listing(client)['kites.txt']['id']}/chunks").json()["chunks"]
    assert "box kites need more" in chunks[0]["text"]

    for name in list(files_of(folder)):
        (folder / name).unlink()
    report = sync_once(api, options)
    assert set(kinds(report).values()) == {"deleted"}
    assert synced(client, folder) == set()
    assert set(listing(client)) == {"manual.txt"}  # the hand upload survived every pass


def test_a_local_file_named_like_a_hand_upload_is_a_conflict_left_alone(
    client: TestClient, folder: Path
) -> None:
    client.post(DOCS, files=[("files", ("manual.txt", io.BytesIO(b"The original by hand.")))])
    before = listing(client)["manual.txt"]
    (folder / "manual.txt").write_text("A file of the same name in the synced folder.")
    report = sync_once(SyncApi(client, "default"), SyncOptions(folder))
    assert kinds(report) == {"manual.txt": "conflict"}
    assert listing(client)["manual.txt"] == before


def test_dry_run_changes_nothing_and_globs_choose_files(client: TestClient, folder: Path) -> None:
    (folder / "a.txt").write_text("Alpha notes.")
    (folder / "b.md").write_text("Beta notes.")
    (folder / "skip.txt").write_text("Left out.")
    api = SyncApi(client, "fresh")
    dry = sync_once(api, SyncOptions(folder, dry_run=True))
    assert kinds(dry) == {"a.txt": "created", "b.md": "created", "skip.txt": "created"}
    assert "would be created a.txt" in dry.format()
    assert client.get("/v1/collections/fresh").status_code == 404  # not even created

    report = sync_once(api, SyncOptions(folder, include=["*.txt", "*.md"], exclude=["skip*"]))
    assert kinds(report) == {"a.txt": "created", "b.md": "created"}
    body = client.get("/v1/collections/fresh/documents").json()
    assert {d.get("source", d.get("filename")) for d in body["documents"]} == {"a.txt", "b.md"}


def test_a_file_the_server_refuses_is_reported_failed(client: TestClient, folder: Path) -> None:
    (folder / "good.txt").write_text("Readable text.")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    report = sync_once(SyncApi(client, "default"), SyncOptions(folder))
    assert kinds(report) == {"good.txt": "created", "broken.png": "failed"}
    assert "failed broken.png: broken.png: the PNG image is damaged" in report.format()
    assert synced(client, folder) == {"good.txt"}


def next_change(reports: queue.Queue[SyncReport]) -> dict[str, str]:
    """The next pass that changed something (a pass over a settled folder changes nothing)."""
    while True:
        found = kinds(reports.get(timeout=120))
        if set(found.values()) != {"unchanged"}:
            return found


def test_watch_follows_changes(client: TestClient, folder: Path) -> None:
    (folder / "first.txt").write_text("The first note.")
    api = SyncApi(client, "default")
    reports: queue.Queue[SyncReport] = queue.Queue()
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_folder,
        args=(lambda: sync_once(api, SyncOptions(folder)), folder, reports.put, stop, 300),
    )
    watcher.start()
    try:
        assert next_change(reports) == {"first.txt": "created"}
        (folder / "second.txt").write_text("The second note.")
        assert next_change(reports) == {"first.txt": "unchanged", "second.txt": "created"}
        (folder / "first.txt").unlink()
        assert next_change(reports) == {"first.txt": "deleted", "second.txt": "unchanged"}
    finally:
        stop.set()
        watcher.join(timeout=60)
    assert not watcher.is_alive()
    assert synced(client, folder) == {"second.txt"}


def test_the_command_over_a_real_server_with_an_api_key(
    settings: Settings, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyed = settings.model_copy(
        update={"security": settings.security.model_copy(update={"api_keys": ["sync-key"]})}
    )
    (folder / "a.txt").write_text("Alpha notes about kites.")
    with running_app(keyed, HashEmbedder()) as client, LoopbackServer(client.app) as server:
        command = ["sync", str(folder), "--server", server.url, "--collection", "notes"]
        assert main([*command, "--api-key", "sync-key"]) == 0
        assert "created a.txt\nsync: 1 created, 0 replaced" in capsys.readouterr().out
        assert main(command) == 2  # no key
        assert "this server needs an API key" in capsys.readouterr().err
        (folder / "a.txt").unlink()
        assert main([*command, "--api-key", "sync-key", "--dry-run"]) == 0
        assert "would be deleted a.txt" in capsys.readouterr().out
        assert main([*command, "--api-key", "sync-key"]) == 0
        assert "deleted a.txt" in capsys.readouterr().out
    assert main([*command, "--api-key", "sync-key"]) == 2  # the server is gone
    assert "cannot reach the server at" in capsys.readouterr().err
