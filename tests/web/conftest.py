"""The ``serve`` fixture: a built site over HTTP on a free local port, as `python -m http.server` serves
it or, with ``isolated=True``, as `ddpm-run serve` does (the headers that allow WebAssembly threads)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # page_helpers

from page_helpers import start_server

from ddpm_runtime.web_server import site_url


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path, isolated: bool = False) -> str:
        servers.append(start_server(folder, isolated))
        return site_url(servers[-1]) + "index.html"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
