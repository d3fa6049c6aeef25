"""Each JavaScript sampler step of the page (web/samplers/) against ddpm_runtime's NumPy step, one image
at a time, on random inputs: the same maths in float64 must agree to rounding."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ddpm_runtime.samplers.ddim import ddim_step
from ddpm_runtime.samplers.dpm_solver_sde import dpm_solver_2m_sde_step
from ddpm_runtime.samplers.thresholding import threshold_x0

HERE = Path(__file__).parent
NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs where it is missing
SIZE = 64  # pixels of one image


def run_js(cases: list[dict]) -> list[np.ndarray]:
    proc = subprocess.run(
        [NODE, str(HERE / "sampler_steps.mjs"), json.dumps(cases)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [np.asarray(result) for result in json.loads(proc.stdout)]


def image(a: np.ndarray | None) -> np.ndarray | None:
    """One flat test image as the (1, C, H, W) batch the NumPy steps take."""
    return None if a is None else a.reshape(1, 1, 8, 8)


def listed(a: np.ndarray | None) -> list | None:
    return None if a is None else a.tolist()


def test_steps_match_numpy():
    rng = np.random.default_rng(5)
    cases, expected = [], []
    for ab, ab_prev, eta, mode in [(0.02, 0.3, 0.0, "none"), (0.5, 0.9, 0.0, "clip"), (0.1, 0.4, 1.0, "dynamic")]:
        x, eps, noise = (rng.standard_normal(SIZE) * 2 for _ in range(3))
        case = dict(x=listed(x), eps=listed(eps), ab=ab, abPrev=ab_prev, eta=eta, noise=listed(noise), mode=mode)
        cases.append(dict(kind="ddim", **case))
        expected.append(np.ravel(ddim_step(image(x), image(eps), ab, ab_prev, eta, image(noise), mode)[0]))
    for ab, ab_next, h_prev in [(1e-4, 0.05, None), (0.05, 0.6, 0.7), (0.6, 1.0, 0.7)]:
        x, x0, x0_prev, noise = (rng.standard_normal(SIZE) for _ in range(4))
        x0_prev = None if h_prev is None else x0_prev
        noise = None if ab_next >= 1 else noise
        case = dict(x=listed(x), x0=listed(x0), x0Prev=listed(x0_prev), noise=listed(noise))
        cases.append(dict(kind="sde", ab=ab, abNext=ab_next, hPrev=h_prev, **case))
        x_t, h = dpm_solver_2m_sde_step(image(x), image(x0), image(x0_prev), ab, ab_next, h_prev, image(noise))
        expected.append(np.append(np.ravel(x_t), h if np.isfinite(h) else np.nan))  # JSON writes inf as null
    for mode, percentile in [("clip", 0.995), ("dynamic", 0.995), ("dynamic", 0.5)]:
        x = rng.standard_normal(SIZE) * 3
        cases.append(dict(kind="threshold", x=listed(x), mode=mode, percentile=percentile))
        expected.append(np.ravel(threshold_x0(image(x), mode, percentile)))
    for got, want in zip(run_js(cases), expected, strict=True):
        got = np.asarray([np.nan if v is None else v for v in got], dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
