"""The ``serve`` fixture: a built site over HTTP on a free local port, as `python -m http.server` serves
it or, with ``isolated=True``, as `ddpm-run serve` does (the headers that allow WebAssembly threads)."""

from __future__ import annotations

import functools
import http.server
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # page_helpers

from ddpm_runtime.web_server import make_server, site_url


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path, isolated: bool = False) -> str:
        if isolated:
            server = make_server(folder, "127.0.0.1", 0)
        else:
            handler = functools.partial(QuietHandler, directory=str(folder))
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return site_url(server) + "index.html"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
