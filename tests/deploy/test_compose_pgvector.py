"""docker-compose.pgvector.yml: the api on PostgreSQL + pgvector, wired as the code expects.

Its schema validation runs with docker-compose.yml's (``test_compose.py``); its healthcheck
runs for real, with the ``pg_isready`` of the pgserver wheel against the test PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
import sys
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


def test_services_are_the_proxy_api_replicas_a_worker_and_postgres() -> None:
    assert set(df.compose(FILE)["services"]) == {"proxy", "api", "worker", "postgres"}
    api, chroma_api = df.service("api", FILE), df.service("api")
    for key in ("build", "env_file", "healthcheck", "restart"):
        assert api[key] == chroma_api[key], key
    chroma_env = df.service_env("api")
    for key in ("RAG_DATA_DIR", "RAG_SERVER__PORT"):
        assert df.service_env("api", FILE)[key] == chroma_env[key]
    assert "ports" not in api  # reached through the proxy only
    assert api["expose"] == [chroma_env["RAG_SERVER__PORT"]]
    assert int(interpolate(str(api["deploy"]["replicas"]), {})) >= 2
    assert "volumes" not in api  # each replica's /data is its own (derived state only)


def test_api_replicas_take_no_jobs_and_the_worker_does(monkeypatch: pytest.MonkeyPatch) -> None:
    api_env = df.service_env("api", FILE)
    assert api_env["RAG_JOBS__WORKERS"] == "0"
    worker = df.service("worker", FILE)
    assert worker["build"] == df.service("api", FILE)["build"]  # the same image
    assert df.image_command()[0] == "ragserver"
    assert worker["command"] == ["worker"]  # ENTRYPOINT ragserver: `ragserver worker`
    worker_env = df.service_env("worker", FILE)
    assert "RAG_JOBS__WORKERS" not in worker_env  # the default: it runs jobs
    for key in ("RAG_DATA_DIR", "RAG_VECTORSTORE__BACKEND", "RAG_VECTORSTORE__PGVECTOR__URL"):
        assert worker_env[key] == api_env[key], key
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, value in worker_env.items():
        monkeypatch.setenv(name, interpolate(value, {"POSTGRES_PASSWORD": "s3cret"}))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.jobs.workers >= 1  # type: ignore[attr-defined]


def test_worker_is_a_command_of_the_image() -> None:
    result = subprocess.run(
        [str(df.VENV_BIN / "ragserver"), "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_proxy_publishes_the_one_port_and_waits_for_healthy_replicas() -> None:
    proxy = df.service("proxy", FILE)
    assert proxy["ports"] == df.service("api")["ports"]  # where the Chroma file's api is
    assert proxy["image"].startswith("nginx:1.")
    (mount,) = proxy["volumes"]
    source, target, mode = mount.split(":")
    assert (df.ROOT / source).resolve() == df.NGINX_CONF
    assert (target, mode) == ("/etc/nginx/nginx.conf", "ro")
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    conf = df.NGINX_CONF.read_text()
    published = proxy["ports"][0].rsplit(":", 1)[1]
    assert f"listen {published};" in conf
    api_port = df.service_env("api", FILE)["RAG_SERVER__PORT"]
    assert f"set $api http://api:{api_port};" in conf
    test = proxy["healthcheck"]["test"]
    assert test[-1] == f"http://127.0.0.1:{published}/proxy-health"
    assert "location = /proxy-health" in conf


def worker_healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    test = df.service("worker", FILE)["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    env = {"RAG_VECTORSTORE__PGVECTOR__URL": url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, *test[2:]], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.integration
def test_worker_healthcheck_reaches_the_database(pg_cluster: PgCluster) -> None:
    assert worker_healthcheck(pg_cluster.url()).returncode == 0


def test_worker_healthcheck_fails_without_the_database() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = worker_healthcheck(f"postgresql://ragserver:x@127.0.0.1:{port}/ragserver")
    assert result.returncode != 0
    assert "Connection refused" in result.stderr or "connection" in result.stderr.lower()


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
