"""Run ragserver in this process with the fast HashEmbedder and EchoGenerator (tests only).

Settings come from the environment (``RAG_DATA_DIR``, ``RAG_VECTORSTORE__BACKEND``, ...) as for
``ragserver serve``. The socket is bound here, on a loopback port the OS picks, and the port is
printed as ``PORT <n>`` before serving, so the test that started this process knows where to
connect without racing for a free port.

    python -m tests.reliability.launcher
"""

from __future__ import annotations

import socket

import uvicorn

from app.logs import configure_logging
from app.main import create_app
from app.services.container import Components
from app.settings import Settings
from tests.fakes import EchoGenerator, HashEmbedder


def main() -> None:
    settings = Settings()
    configure_logging(settings.server.log_level)
    app = create_app(settings, Components(embedder=HashEmbedder(), generator=EchoGenerator()))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
