"""Build a site with `ddpm-run web` and drive its page in Debian's chromium (browser_page.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ddpm_runtime.cli import main as ddpm_run

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
