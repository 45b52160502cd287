"""deploy/nginx.conf: valid for nginx, and a real nginx with it in front of a real ragserver.

The compose proxy resolves ``api`` through Docker's DNS at request time; here the one
upstream address becomes the loopback address of a ragserver process (``tests.reliability``
launcher) and the port a free one, the rest of the file unchanged.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
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


class Resolver:
    """A DNS server on loopback answering A queries for ``api`` with ``addresses`` (TTL 1 s)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _answer(self, query: bytes) -> bytes:
        end = 12
        labels = []
        while query[end]:
            labels.append(query[end + 1 : end + 1 + query[end]].decode())
            end += 1 + query[end]
        qtype = struct.unpack("!H", query[end + 1 : end + 3])[0]
        question = query[12 : end + 5]
        found = labels == ["api"] and qtype == 1
        answers = self.addresses if found else []
        rcode = 0 if labels == ["api"] else 3  # NXDOMAIN for any other name
        header = query[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, len(answers), 0, 0)
        records = b"".join(
            struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(a) for a in answers
        )
        return header + question + records

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.queries += 1
            self.sock.sendto(self._answer(query), peer)

    def close(self) -> None:
        self.sock.close()


def start_replica(tmp: Path, address: str, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp / address),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(df.ROOT),
        "RAG_LLM__LOAD_AT_STARTUP": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.launcher", address, str(port)],
        cwd=df.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp / f"{address}.log").open("w"),
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("PORT "), (tmp / f"{address}.log").read_text()
    base = f"http://{address}:{port}"
    deadline = time.monotonic() + 120  # a safety net; start-up takes seconds
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, (tmp / f"{address}.log").read_text()
        assert time.monotonic() < deadline, "replica not ready"
        time.sleep(0.1)


def test_proxy_resolves_api_per_request_and_spreads_requests_over_replicas(
    tmp_path: Path,
) -> None:
    """Two replicas behind the name ``api`` (as Docker's DNS gives it): round robin; one dies."""
    addresses = ["127.0.0.2", "127.0.0.3"]
    with socket.socket() as sock:
        sock.bind((addresses[0], 0))
        api_port = sock.getsockname()[1]
    replicas = [start_replica(tmp_path, a, api_port) for a in addresses]
    resolver = Resolver(addresses)
    proxy_port = free_port()
    text = df.NGINX_CONF.read_text()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        text.replace("resolver 127.0.0.11 ", f"resolver 127.0.0.1:{resolver.port} ")
        .replace("listen 8000;", f"listen 127.0.0.1:{proxy_port};")
        .replace("http://api:8000;", f"http://api:{api_port};")
    )
    assert conf.read_text().count(f"api:{api_port}") == 1
    nginx_proc = subprocess.Popen(
        nginx("-g", "daemon off;", conf=conf, pid=tmp_path / "nginx.pid"),
        stderr=(tmp_path / "nginx.log").open("w"),
    )
    proxy = f"http://127.0.0.1:{proxy_port}"
    try:
        for address in addresses:  # each replica holds a document naming it (own data dir)
            name = address.replace(".", "-")
            resp = httpx.post(
                f"http://{address}:{api_port}/v1/collections/default/documents",
                files=[("files", (f"{name}.md", f"# Replica\n\nreplica {name} here\n"))],
                timeout=60,
            )
            assert resp.status_code == 201, resp.text

        def answered_by() -> str:
            resp = httpx.post(
                f"{proxy}/v1/collections/default/search",
                json={"query": "replica here", "top_k": 1, "mode": "bm25"},
                timeout=60,
            )
            assert resp.status_code == 200, resp.text
            return str(resp.json()["hits"][0]["source"])

        deadline = time.monotonic() + 60  # a safety net: nginx starts in milliseconds
        while True:
            try:
                httpx.get(f"{proxy}/proxy-health", timeout=2)
                break
            except httpx.HTTPError:
                assert nginx_proc.poll() is None, (tmp_path / "nginx.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        seen = [answered_by() for _ in range(6)]
        assert set(seen) == {"127-0-0-2.md", "127-0-0-3.md"}, seen
        assert resolver.queries >= 1  # "api" was resolved through the resolver, not /etc/hosts

        replicas[1].kill()  # a replica gone: its address refuses, the next one answers
        replicas[1].wait(timeout=30)
        assert {answered_by() for _ in range(6)} == {"127-0-0-2.md"}
    finally:
        nginx_proc.terminate()
        nginx_proc.wait(timeout=30)
        resolver.close()
        for proc in replicas:
            proc.kill()
            proc.wait(timeout=30)
