"""Build a site with `ddpm-run web` and drive its page in Debian's chromium (browser_page.mjs)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

from ddpm_runtime.cli import main as ddpm_run
from ddpm_runtime.web_server import make_server

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
NODE = shutil.which("node") or "node"  # `make test` installs nodejs, chromium and the npm packages


def build(model: Path, out: Path) -> Path:
    ddpm_run(
        ["web", str(model), "--out", str(out), "--onnxruntime-web", str(ROOT / "node_modules" / "onnxruntime-web")]
    )
    return out


def drive(url: str, **request) -> dict:
    """The page's window.ddpmStatus after filling the form with request["fields"] (and generating, where
    request["generate"]), its console errors, the error line it shows and its backend choices."""
    proc = subprocess.run(
        [NODE, str(HERE / "browser_page.mjs"), url, json.dumps(request)], capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def start_server(folder: Path, isolated: bool = False) -> http.server.ThreadingHTTPServer:
    """``folder`` over HTTP on a free local port, serving in a daemon thread: as `python -m http.server`
    serves it, or with ``isolated`` as `ddpm-run serve` does (the headers WebAssembly threads need)."""
    if isolated:
        server = make_server(folder, "127.0.0.1", 0)
    else:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
