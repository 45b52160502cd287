"""Run ragserver in this process with the fast HashEmbedder and EchoGenerator (tests only).

Settings come from the environment (``RAG_DATA_DIR``, ``RAG_VECTORSTORE__BACKEND``, ...) as for
``ragserver serve``. The socket is bound here, on a loopback port the OS picks, and the port is
printed as ``PORT <n>`` before serving, so the test that started this process knows where to
connect without racing for a free port.

    python -m tests.reliability.launcher [ADDRESS [PORT]]

ADDRESS (127.0.0.1) and PORT (0: one the OS picks) say where to listen; several replicas can
share a port on different loopback addresses (127.0.0.2, ...).
"""

from __future__ import annotations

import socket
import sys

import uvicorn

from app.logs import configure_logging
from app.main import create_app
from app.services.container import Components
from app.settings import Settings
from tests.fakes import EchoGenerator, HashEmbedder


def main(argv: list[str]) -> None:
    address = argv[0] if argv else "127.0.0.1"
    port = int(argv[1]) if len(argv) > 1 else 0
    settings = Settings()
    configure_logging(settings.server.log_level)
    app = create_app(settings, Components(embedder=HashEmbedder(), generator=EchoGenerator()))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
