"""The ``ragserver`` command: beside a running server (``--server``), and on its own.

The server is a real process on loopback (``tests.reliability.launcher``: the hash embedder
and the echo generator); the command runs in this process through ``app.cli.main``, except
where the test is about what a user sees from the installed command (a subprocess).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app import cli
from app.services import container
from app.settings import Settings
from tests.fakes import HashEmbedder
from tests.reliability.server import ROOT, ServerProcess, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One running server (FAISS) for the module's tests."""
    with running_server(tmp_path_factory.mktemp("cli") / "data") as proc:
        yield proc


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with two README.md files in different sub-folders and one unreadable file."""
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "README.md").write_text("# Alpha\n\nThe alpha readme talks about zebras.\n")
    (root / "b" / "README.md").write_text("# Beta\n\nThe beta readme talks about yaks.\n")
    return root


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("ragserver: "), err
    assert "Traceback" not in err
    return lines[0]


def test_local_command_beside_a_running_server_says_to_use_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Reproduces #23.1: a local ``search`` on the server's data directory was a traceback."""
    env = {
        "PYTHONPATH": str(ROOT),
        "RAG_DATA_DIR": str(server.data_dir),
        "HF_HUB_OFFLINE": "1",
        "RAG_EMBEDDING__QUERY_BACKEND": "same",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "search", "zebras"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ragserver:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "in use by a running ragserver" in errors[0]
    assert "--server http://" in errors[0]


def test_ingest_search_and_ask_through_the_server(
    server: ServerProcess, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url
    assert run(["ingest", str(tree), "--server", url, "--collection", "clitree"], capsys)[0] == 1
    code, out, _ = run(
        ["ingest", str(tree), "--server", url, "--collection", "clitree", "--create"], capsys
    )
    assert code == 0, out
    assert "created collection 'clitree'" in out
    assert "created 2" in out
    docs = httpx.get(f"{url}/v1/collections/clitree/documents").json()["documents"]
    assert sorted(d["source"] for d in docs) == ["a/README.md", "b/README.md"]

    code, out, _ = run(["search", "zebras", "--server", url, "--collection", "clitree"], capsys)
    assert code == 0
    assert out.splitlines()[0].split()[2] == "a/README.md"
    code, out, _ = run(
        ["search", "readme", "--server", url, "--collection", "clitree"]
        + ["--filter", '{"filename": "b/README.md"}'],
        capsys,
    )
    assert code == 0
    assert "b/README.md" in out
    assert "a/README.md" not in out

    code, out, _ = run(
        ["ask", "what about zebras?", "--server", url, "--collection", "clitree", "--stream"],
        capsys,
    )
    assert code == 0, out
    assert "zebras" in out.split("Sources:")[0]
    assert "a/README.md" in out.split("Sources:")[1]


def test_ingest_names_failed_files_and_exits_non_zero(
    server: ServerProcess, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "only-heading.md").write_text("# Just a title\n")
    (tree / "notes.rst").write_text("Not a type ragserver reads.\n")
    code, out, _ = run(["ingest", str(tree), "--server", server.url], capsys)
    assert code == 1
    assert "failed 1" in out
    assert "skipped (hidden, unsupported type or excluded): notes.rst" in out
    failed = out.split("failed:\n", 1)[1]
    assert "only-heading.md" in failed
    assert "no text beyond its headings" in failed


def test_search_errors_are_one_line_through_the_server(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url
    code, _, err = run(["search", "x", "--server", url, "--filter", '{"source": '], capsys)
    assert code == 1
    assert "--filter is not valid JSON" in one_line_error(err)
    code, _, err = run(["search", "x", "--server", url, "--collection", "nope"], capsys)
    assert code == 1
    assert "collection 'nope' does not exist" in one_line_error(err)
    httpx.post(f"{url}/v1/collections", json={"name": "hollow"}).raise_for_status()
    code, _, err = run(["search", "x", "--server", url, "--collection", "hollow"], capsys)
    assert code == 1
    assert "collection 'hollow' is empty" in one_line_error(err)


def test_api_key_from_option_or_environment(
    tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(tmp_path / "keyed", {"RAG_SECURITY__API_KEYS": "sesame"}) as keyed:
        code, _, err = run(["ingest", str(tree), "--server", keyed.url], capsys)
        assert code == 1
        assert "Bearer" in one_line_error(err) or "key" in err
        code, out, _ = run(
            ["ingest", str(tree), "--server", keyed.url, "--api-key", "sesame"], capsys
        )
        assert code == 0, out
        monkeypatch.setenv("RAG_CLIENT__SERVER_URL", keyed.url)
        monkeypatch.setenv("RAG_CLIENT__API_KEY", "sesame")
        code, out, _ = run(["search", "zebras"], capsys)
        assert code == 0
        assert "a/README.md" in out


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local commands embed with the hash embedder; loading an answering model fails loudly."""

    def no_generator(*_: object, **__: object) -> None:
        raise AssertionError("search must not load the answering model")

    monkeypatch.setattr(container, "build_embedder", lambda settings: HashEmbedder())
    monkeypatch.setattr(container, "create_generator", no_generator)


@pytest.mark.usefixtures("local")
def test_local_search_loads_no_answering_model(
    tree: Path, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    (tree / "notes.rst").write_text("Not a type ragserver reads.\n")
    code, out, _ = run(["ingest", str(tree)], capsys)
    assert code == 0, out
    assert "skipped (hidden, unsupported type or excluded): notes.rst" in out
    code, out, _ = run(["search", "zebras"], capsys)
    assert code == 0
    assert out.splitlines()[0].split()[2] == "a/README.md"
    assert not (settings.data_dir / "models").exists()


@pytest.mark.usefixtures("local")
def test_local_errors_are_one_line(
    tree: Path, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    code, _, err = run(["search", "x"], capsys)
    assert code == 1
    assert "collection 'default' is empty" in one_line_error(err)
    code, _, err = run(["search", "x", "--filter", "[1]"], capsys)
    assert code == 1
    assert "--filter must be a JSON object" in one_line_error(err)
    code, _, err = run(["search", "x", "--collection", "nope"], capsys)
    assert code == 1
    assert "collection 'nope' does not exist" in one_line_error(err)
    code, _, err = run(["ingest", str(tree), "--collection", "tpyo"], capsys)
    assert code == 1
    assert "add --create" in one_line_error(err)
    assert not (settings.data_dir / "faiss" / "tpyo").exists()


def test_version_and_defaults_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "ragserver 0.1.0"
    parser = cli.build_parser()
    for command in ("serve", "ingest", "search", "ask", "eval", "sync"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        options = [a for a in text.split() if a.startswith("--") and a != "--help"]
        assert options, command
        assert "(default:" in text, command
    with pytest.raises(SystemExit):
        parser.parse_args(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "hits to show (default: 5)" in text
    assert "collection to search (default: default)" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--help"])
    assert "bootstrap seed (default: 0)" in " ".join(capsys.readouterr().out.split())


def test_held_store_message_offers_server_only_where_it_works(settings: Settings) -> None:
    search = cli.locked_message(cli.build_parser().parse_args(["search", "q"]), settings)
    assert "--server http://127.0.0.1:8000" in search
    evaluation = cli.locked_message(cli.build_parser().parse_args(["eval", "q.jsonl"]), settings)
    assert "--server" not in evaluation
    assert "stop the server first" in evaluation
