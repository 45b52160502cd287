"""docker-compose.yml: valid Compose, and wired the way the code and the Dockerfile expect."""

from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.settings import ServerSettings, Settings
from tests.deploy import deployfiles as df

CHROMA_PORT = 8000  # the chromadb/chroma image's port (EXPOSE 8000)
CHROMA_DATA = "/data"  # persist_path in the image's /config.yaml (Chroma 1.x)
OLLAMA_PORT = 11434


@pytest.mark.parametrize("path", [df.COMPOSE, df.COMPOSE_PGVECTOR], ids=lambda p: p.name)
def test_validates_against_the_compose_specification(path: Path) -> None:
    result = subprocess.run(
        [
            str(df.VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_api_is_this_image_and_chroma_a_pinned_official_one() -> None:
    assert df.service("api")["build"] == "."
    image, _, tag = df.service("chroma")["image"].partition(":")
    assert image == "chromadb/chroma"
    # The server speaks the API of the chromadb client the api installs: same major.minor.
    client = version("chromadb").split(".")[:2]
    assert tag.split(".")[:2] == client, f"pin chromadb/chroma to {version('chromadb')}"


def test_api_uses_the_chroma_server() -> None:
    env = df.service_env("api")
    assert env["RAG_VECTORSTORE__BACKEND"] == "chroma"
    url = urlsplit(env["RAG_VECTORSTORE__CHROMA__URL"])
    assert (url.scheme, url.hostname, url.port) == ("http", "chroma", CHROMA_PORT)
    assert df.service("api")["depends_on"]["chroma"]["condition"] == "service_healthy"


def test_api_publishes_the_settings_default_port() -> None:
    default = ServerSettings().port
    (mapping,) = df.service("api")["ports"]
    assert str(mapping).rsplit(":", 1)[1] == str(default)
    assert df.service_env("api")["RAG_SERVER__PORT"] == str(default)


def test_api_data_lives_in_a_named_volume_at_the_image_data_directory() -> None:
    (mount,) = df.service("api")["volumes"]
    volume, target = mount.split(":")
    assert target == df.env(df.stages()[-1])["RAG_DATA_DIR"] == "/data"
    assert df.service_env("api")["RAG_DATA_DIR"] == target
    assert volume in df.compose()["volumes"]


def test_chroma_keeps_its_data_in_a_named_volume() -> None:
    (mount,) = df.service("chroma")["volumes"]
    volume, target = mount.split(":")
    assert target == CHROMA_DATA
    assert volume in df.compose()["volumes"]


def test_api_healthcheck_is_the_image_healthcheck() -> None:
    _, command = df.healthcheck()
    assert df.service("api")["healthcheck"]["test"] == ["CMD", *command]


def test_chroma_healthcheck_asks_the_heartbeat_on_its_port() -> None:
    test = df.service("chroma")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    assert f"/dev/tcp/127.0.0.1/{CHROMA_PORT}" in test[3]
    assert "GET /api/v2/heartbeat " in test[3]


@pytest.mark.parametrize("name", ["api", "chroma", "ollama"])
def test_long_running_services_have_healthchecks(name: str) -> None:
    check = df.service(name)["healthcheck"]
    assert check["test"][0] == "CMD"
    assert "interval" in check


def test_ollama_is_an_optional_profile() -> None:
    assert "profiles" not in df.service("api")
    assert "profiles" not in df.service("chroma")
    assert df.service("ollama")["profiles"] == ["ollama"]
    assert df.service("ollama-pull")["profiles"] == ["ollama"]
    assert str(OLLAMA_PORT) in df.service("ollama")["expose"]
    assert df.service("ollama-pull")["depends_on"]["ollama"]["condition"] == "service_healthy"


def test_the_documented_ollama_settings_reach_the_ollama_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documented = dict(df.env_example_assignments("the ollama profile"))
    url = urlsplit(documented["RAG_LLM__BASE_URL"])
    assert (url.hostname, url.port, url.path) == ("ollama", OLLAMA_PORT, "/v1")
    pull = " ".join(df.service("ollama-pull")["command"])
    assert documented["RAG_LLM__MODEL"] in pull  # the model pulled by default is the one used
    for name, value in documented.items():
        if name.startswith("RAG_"):
            monkeypatch.setenv(name, value)
    llm = Settings(_env_file=None).llm  # type: ignore[call-arg]
    assert llm.backend == "openai"
    assert llm.base_url == "http://ollama:11434/v1"


def test_scaling_out_needs_a_port_range_the_api_port_accepts() -> None:
    (mapping,) = df.service("api")["ports"]
    published = str(mapping).rsplit(":", 1)[0]
    assert published == "${API_PORT:-8000}"  # API_PORT=8000-8002 for --scale api=3
    assert "API_PORT=8000-8002" in df.readme_deploy_section()
