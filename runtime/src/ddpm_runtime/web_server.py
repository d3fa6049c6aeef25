"""``ddpm-run serve``: a static file server for the site ``ddpm-run web`` writes, with the two headers
that make the page cross-origin isolated, so onnxruntime-web may run WebAssembly threads.

Browsers give a page SharedArrayBuffer (which WebAssembly threads need) only when its document is served
with ``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``.
``python -m http.server`` sends neither, so a page served by it runs single-threaded. This server is
the standard library's, plus those headers, the JavaScript MIME type for ``.mjs`` (module scripts must
have one) and ``application/wasm`` (for streaming compilation); it serves one folder and nothing above it.
Browsers isolate only secure contexts: http://localhost (or 127.0.0.1) counts as one; from another
machine the site needs HTTPS with the same two headers.
"""

from __future__ import annotations

import functools
import http.server
from pathlib import Path
from typing import ClassVar

from .errors import UserError

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}
TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler (which keeps requests inside its folder) with the isolation headers."""

    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")  # a rebuilt site (new model.onnx) is seen at once
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        pass  # one line per file is noise; errors reach the browser's console


def check_site(folder: Path) -> None:
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (write the site first: ddpm-run web MODEL --out {folder})")
    if not (folder / "index.html").is_file():
        raise UserError(f"{folder}: has no index.html; is it a folder that `ddpm-run web` wrote?")


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server for ``folder`` bound to (host, port), not yet serving; port 0 picks a free one."""
    check_site(folder)
    handler = functools.partial(IsolatedHandler, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def site_url(server: http.server.ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1") else host
    return f"http://{shown}:{port}/"
