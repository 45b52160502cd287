"""``ragserver ingest`` over files already stored as they are loads no model."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.services.container as container
from app.cli import main
from ingest.base import Embedder
from tests.fakes import HashEmbedder


def test_an_unchanged_folder_is_answered_without_loading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAG_EMBEDDING__MODEL", "hash-64")  # the fake model's name
    loads: list[str] = []

    def build_embedder(settings: object) -> Embedder:
        loads.append("model")
        return HashEmbedder()

    monkeypatch.setattr(container, "build_embedder", build_embedder)
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Alpha notes about kites.")
    (folder / "sub" / "b.md").write_text("# Beta\n\nNotes about boats.")
    command = ["ingest", str(folder), "--collection", "notes"]

    assert main(command) == 0
    assert loads == ["model"]
    assert "created 2" in capsys.readouterr().out

    assert main(command) == 0  # nothing changed: no model
    assert loads == ["model"]
    out = capsys.readouterr().out
    assert "files: 2 (created 0, replaced 0, unchanged 2, failed 0, skipped 0)" in out

    (folder / "a.txt").write_text("Alpha notes about kites, revised.")
    assert main(command) == 0  # one file changed: the model is needed again
    assert loads == ["model", "model"]
    assert "replaced 1, unchanged 1" in capsys.readouterr().out

    assert main([*command, "--include", "*.md"]) == 0  # a subset, all unchanged: no model
    assert loads == ["model", "model"]
    assert "unchanged 1, failed 0, skipped 1" in capsys.readouterr().out

    (folder / "c.txt").write_text("A new file.")
    assert main(command) == 0
    assert loads == ["model", "model", "model"]
    assert "created 1" in capsys.readouterr().out
