"""deploy/nginx.conf: valid for nginx, and a real nginx with it in front of a real ragserver.

The compose proxy resolves ``api`` through Docker's DNS at request time; here the one
upstream address becomes the loopback address of a ragserver process (``tests.reliability``
launcher) and the port a free one, the rest of the file unchanged.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy import deployfiles as df
from tests.reliability.server import running_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # Debian's, from scripts/system_deps.sh


def nginx(*args: str, conf: Path = df.NGINX_CONF, pid: Path) -> list[str]:
    assert Path(NGINX).exists(), "nginx is missing: run scripts/system_deps.sh test"
    return [NGINX, "-c", str(conf), "-g", f"pid {pid}; error_log stderr;", *args]


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    result = subprocess.run(
        nginx("-t", pid=tmp_path / "nginx.pid"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(proxy URL, server URL): nginx with deploy/nginx.conf before one ragserver process."""
    env = {"RAG_INGEST__MAX_FILE_MB": "2", "RAG_LLM__LOAD_AT_STARTUP": "false"}
    with running_server(tmp_path / "data", env) as server:
        port = free_port()
        text = df.NGINX_CONF.read_text()
        upstream = server.url.removeprefix("http://")
        assert "http://api:8000;" in text
        assert "listen 8000;" in text
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            text.replace("http://api:8000;", f"http://{upstream};").replace(
                "listen 8000;", f"listen 127.0.0.1:{port};"
            )
        )
        proc = subprocess.Popen(
            nginx("-g", "daemon off;", conf=conf, pid=tmp_path / "nginx.pid"),
            stderr=(tmp_path / "nginx.log").open("w"),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60  # a safety net: nginx starts in milliseconds
            while True:
                try:
                    if httpx.get(f"{base}/proxy-health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, (tmp_path / "nginx.log").read_text()
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.05)
            yield base, server.url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def upload(base: str, size: int) -> httpx.Response:
    line = b"The lighthouse keeper logs every passing ship in a leather-bound ledger.\n"
    data = b"# Ledger\n\n" + line * (size // len(line))
    return httpx.post(
        f"{base}/v1/collections/default/documents",
        files=[("files", ("ledger.md", data))],
        timeout=300,
    )


def test_proxy_forwards_health_search_and_large_uploads(proxied: tuple[str, str]) -> None:
    base, _ = proxied
    assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
    stored = upload(base, 1_500_000)  # above nginx's default 1 MB body limit
    assert stored.status_code == 201, stored.text
    resp = httpx.post(
        f"{base}/v1/collections/default/search",
        json={"query": "lighthouse ledger", "top_k": 1, "mode": "bm25"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["hits"][0]["source"] == "ledger.md"


def test_too_large_uploads_get_ragservers_own_413(proxied: tuple[str, str]) -> None:
    base, _ = proxied
    refused = upload(base, 2_500_000)  # above RAG_INGEST__MAX_FILE_MB=2
    assert refused.status_code == 413, refused.text
    # ragserver's problem JSON naming the limit, not nginx's HTML page.
    assert "ledger.md: file is over the 2 MB limit" in refused.json()["error"]["message"]
