"""The page's own copies of ddpm-run's defaults (it cannot import Python) equal the runtime's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ddpm_runtime.default_sampling import EPSILON_DEFAULT_SAMPLER
from ddpm_runtime.guidance import DEFAULT_GUIDANCE_SCALE

NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs where it is missing
WEB = Path(__file__).resolve().parents[2] / "runtime" / "src" / "ddpm_runtime" / "web"


def test_page_defaults_equal_the_runtimes():
    script = (
        f"const m = await import({json.dumps((WEB / 'model.js').as_uri())});"
        f"const s = await import({json.dumps((WEB / 'samplers' / 'index.js').as_uri())});"
        "console.log(JSON.stringify({guidance: m.DEFAULT_GUIDANCE_SCALE, sampler: s.DEFAULT_SAMPLER}));"
    )
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"guidance": DEFAULT_GUIDANCE_SCALE, "sampler": EPSILON_DEFAULT_SAMPLER}
