"""`ddpm-run serve`: the site over HTTP with the headers that make the page cross-origin isolated, the
MIME types module scripts and WebAssembly need, nothing outside the folder, and one-line refusals."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ddpm_runtime.errors import UserError
from ddpm_runtime.web_server import make_server, site_url


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    (folder / "ort").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>t</title>")
    (folder / "ort" / "ort.min.mjs").write_text("export const x = 1;")
    (folder / "ort" / "runtime.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (tmp_path / "secret.txt").write_text("outside the site")
    return folder


@pytest.fixture
def served(site: Path):
    server = make_server(site, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site_url(server)
    server.shutdown()
    server.server_close()


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers, response.read()


def test_every_file_carries_the_isolation_headers_and_its_type(served):
    types = {"": "text/html", "ort/ort.min.mjs": "text/javascript", "ort/runtime.wasm": "application/wasm"}
    for path, content_type in types.items():
        status, headers, body = get(served + path)
        assert status == 200 and body
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert headers["Content-Type"].split(";")[0] == content_type, path


def test_nothing_outside_the_folder_is_served(served):
    for path in ("../secret.txt", "%2e%2e/secret.txt", "ort/../../secret.txt"):
        try:
            status, _, body = get(served + path)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, b""
        assert b"outside the site" not in body and status in (200, 404), path


def test_refusals_are_one_line(tmp_path, site):
    with pytest.raises(UserError, match="no such folder"):
        make_server(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"has no index\.html"):
        make_server(tmp_path / "empty")
    taken = make_server(site, "127.0.0.1", 0)
    try:
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{taken.server_address[1]}"):
            make_server(site, "127.0.0.1", taken.server_address[1])
    finally:
        taken.server_close()
    code = "import sys; from ddpm_runtime.cli import main; main(sys.argv[1:])"
    args = [sys.executable, "-c", code, "serve", str(tmp_path / "missing")]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such folder" in proc.stderr
