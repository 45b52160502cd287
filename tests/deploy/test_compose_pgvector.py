"""docker-compose.pgvector.yml: the api on PostgreSQL + pgvector, wired as the code expects.

Its schema validation runs with docker-compose.yml's (``test_compose.py``); its healthcheck
runs for real, with the ``pg_isready`` of the pgserver wheel against the test PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from app.settings import Settings
from tests.deploy import deployfiles as df
from tests.pg import PgCluster
from vectorstores.pgvector_db import Target

FILE = df.COMPOSE_PGVECTOR
PG_PORT = "5432"  # the postgres image's port (EXPOSE 5432)
PG_DATA = "/var/lib/postgresql/data"  # PGDATA of the postgres image
INTERPOLATION = re.compile(r"\$\{(\w+)(?::[?-]([^}]*))?\}")


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``, for the tests."""

    def value(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)
        if name in values:
            return values[name]
        assert ":-" in rest, f"{name} must be set: {match.group(2)}"
        return match.group(2)

    return INTERPOLATION.sub(value, text)


def api_url(password: str) -> str:
    return interpolate(
        df.service_env("api", FILE)["RAG_VECTORSTORE__PGVECTOR__URL"],
        {"POSTGRES_PASSWORD": password},
    )


def test_postgres_is_the_pinned_pgvector_image_with_its_data_in_a_volume() -> None:
    postgres = df.service("postgres", FILE)
    assert postgres["image"] == "pgvector/pgvector:pg16"
    (mount,) = postgres["volumes"]
    volume, target = mount.split(":")
    assert target == PG_DATA
    assert volume in df.compose(FILE)["volumes"]
    assert PG_PORT in postgres["expose"]
    assert "ports" not in postgres  # the database is reached through the api only


def test_api_reaches_postgres_as_its_user_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    pg_env = df.service_env("postgres", FILE)
    target = Target.parse(api_url("s3cret"))
    assert (target.host, target.port) == ("postgres", PG_PORT)
    assert (target.user, target.dbname) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"])
    password = interpolate(pg_env["POSTGRES_PASSWORD"], {"POSTGRES_PASSWORD": "s3cret"})
    assert password == "s3cret"
    assert "s3cret@postgres" in api_url("s3cret")  # the same variable on both sides
    api = df.service("api", FILE)
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, value in df.service_env("api", FILE).items():
        monkeypatch.setenv(name, interpolate(value, {"POSTGRES_PASSWORD": "s3cret"}))
    vectorstore = Settings(_env_file=None).vectorstore  # type: ignore[call-arg]
    assert vectorstore.backend == "pgvector"
    assert vectorstore.pgvector.url == api_url("s3cret")


def test_the_password_is_required_not_defaulted() -> None:
    for text in (
        df.service_env("api", FILE)["RAG_VECTORSTORE__PGVECTOR__URL"],
        df.service_env("postgres", FILE)["POSTGRES_PASSWORD"],
    ):
        with pytest.raises(AssertionError, match="POSTGRES_PASSWORD must be set"):
            interpolate(text, {})
    assert ("POSTGRES_PASSWORD", "") in df.env_example_assignments()


def test_api_is_the_same_service_as_in_the_chroma_file() -> None:
    api, chroma_api = df.service("api", FILE), df.service("api")
    for key in ("build", "env_file", "ports", "volumes", "healthcheck", "restart"):
        assert api[key] == chroma_api[key], key
    chroma_env = df.service_env("api")
    for key in ("RAG_DATA_DIR", "RAG_SERVER__PORT"):
        assert df.service_env("api", FILE)[key] == chroma_env[key]
    assert set(df.compose(FILE)["services"]) == {"api", "postgres"}


def healthcheck_command() -> list[str]:
    test = df.service("postgres", FILE)["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1] == "pg_isready"
    command: list[str] = test[1:]
    assert command[command.index("-h") + 1] == "127.0.0.1"
    assert command[command.index("-p") + 1] == PG_PORT
    pg_env = df.service_env("postgres", FILE)
    assert command[command.index("-U") + 1] == pg_env["POSTGRES_USER"]
    assert command[command.index("-d") + 1] == pg_env["POSTGRES_DB"]
    return command


def run_healthcheck(host: str, port: str) -> int:
    """Run the postgres healthcheck with pgserver's pg_isready, aimed at ``host:port``."""
    import pgserver

    command = healthcheck_command()
    command[command.index("-h") + 1] = host
    command[command.index("-p") + 1] = port
    pg_isready = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_isready"
    return subprocess.run(
        [str(pg_isready), *command[1:]], capture_output=True, timeout=60, check=False
    ).returncode


@pytest.mark.integration
def test_postgres_healthcheck_follows_the_server(pg_cluster: PgCluster) -> None:
    assert run_healthcheck(pg_cluster.socket_dir, PG_PORT) == 0


def test_postgres_healthcheck_fails_when_nothing_listens() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    assert run_healthcheck("127.0.0.1", port) != 0


def test_readme_says_how_to_run_it() -> None:
    text = df.README.read_text()
    assert "docker compose -f docker-compose.pgvector.yml up -d" in text
    assert "POSTGRES_PASSWORD" in text
