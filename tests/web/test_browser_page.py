"""The page `ddpm-run web` writes, in a real browser: Debian's chromium, headless, driven by playwright-core
(tests/web/browser_page.mjs), the site served from a local port. It loads, draws 4 images equal to
ddpm-run's for the same seed within one grey level, logs no console errors, and shows a bad model's
problem as one line."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from ddpm_runtime.cli import main as ddpm_run
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
NODE = shutil.which("node") or "node"  # `make test` installs nodejs, chromium and the npm packages
pytestmark = pytest.mark.slow


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/index.html"

    yield start
    for server in servers:
        server.shutdown()


def build(model: Path, out: Path) -> Path:
    ddpm_run(
        ["web", str(model), "--out", str(out), "--onnxruntime-web", str(ROOT / "node_modules" / "onnxruntime-web")]
    )
    return out


def drive(url: str, **request) -> dict:
    proc = subprocess.run(
        [NODE, str(HERE / "browser_page.mjs"), url, json.dumps(request)], capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_page_draws_ddpm_runs_images(tiny_onnx, tmp_path, serve):
    site = build(tiny_onnx, tmp_path / "site")
    assert {"index.html", "app.js", "model.onnx", "ort/ort.min.mjs"} <= set(
        json.loads((site / "site.json").read_text())["files"]
    )
    result = drive(
        serve(site), generate=True, fields={"count": 4, "seed": 3, "steps": 10}, screenshot=str(tmp_path / "page.png")
    )
    assert result["consoleErrors"] == [] and result["shownError"] == ""
    status = result["status"]
    assert status.get("done"), status
    model = load_onnx_model(tiny_onnx, "cpu")
    expected = generate(model, model.metadata, SamplingSettings(4, 16, "dpm-solver++-sde", 10, seed=3))
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(expected.shape[0], 1, 12, 12).transpose(0, 2, 3, 1)
    assert expected.std() > 0
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert (tmp_path / "page.png").stat().st_size > 1000


def test_bad_model_is_one_line_on_the_page(tiny_onnx, tmp_path, serve):
    site = build(tiny_onnx, tmp_path / "site")
    (site / "model.onnx").write_bytes(b"\xff" * 64)
    result = drive(serve(site), generate=False)
    assert result["shownError"].startswith("error: model.onnx: not an ONNX model")
    assert "\n" not in result["shownError"]
