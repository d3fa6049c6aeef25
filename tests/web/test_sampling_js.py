"""Whole sampling runs of the page's JavaScript (web/generate.js, web/samplers/index.js) against
ddpm_runtime's samplers, with an analytic function standing in for the network, so the loops, the
per-image noise order and the pixel rounding are checked without onnxruntime: same seed, same images."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ddpm_runtime.images import to_uint8_nhwc
from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.timesteps import sampling_timesteps

HERE = Path(__file__).parent
NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs where it is missing
SHAPE = (1, 6, 6)
CONFIG = ScheduleConfig(num_timesteps=200)


def eps_model(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The stand-in network of sample_batch.mjs: tanh(x / 2) (t / T + 1/2), from float32 inputs."""
    t = np.asarray(t, dtype=np.float64)[:, None, None, None]
    return np.tanh(np.asarray(x, dtype=np.float64) / 2) * (t / CONFIG.num_timesteps + 0.5)


def numpy_run(sampler: str, steps: int, seed: int, first: int, count: int, options: dict) -> np.ndarray:
    schedule = NoiseSchedule.from_config(CONFIG)
    spec = get_sampler(sampler)
    rng = PerImageNoise(seed, first, count)
    x_T = rng.standard_normal((count, *SHAPE))
    times = sampling_timesteps(schedule, steps, spec.default_spacing)
    declared = {option.name: option.default for option in spec.options}
    return spec.sample(eps_model, x_T, schedule, times, rng=rng, **{**declared, **options})


CASES = [
    ("dpm-solver++-sde", 12, {}),
    ("ddim", 10, {}),
    ("ddim", 6, {"eta": 1.0, "x0": "dynamic"}),
    ("ddpm", 15, {}),
    ("ddpm", 8, {"x0": "clip"}),
    ("dpm-solver++", 9, {}),
    ("dpm-solver++3m", 7, {}),
    ("consistency", 3, {}),
]


@pytest.mark.parametrize("sampler,steps,options", CASES, ids=[f"{c[0]}-{c[1]}-{len(c[2])}" for c in CASES])
def test_js_sampling_matches_numpy(sampler, steps, options):
    seed, first, count = 11, 5, 3  # images 5..7: the page's batches start anywhere, as ddpm-run's do
    js_options = {"percentile": options.get("x0_percentile", 0.995), **options}
    request = dict(schedule=CONFIG.to_dict(), sampler=sampler, steps=steps, seed=seed, first=first, count=count,
                   pixels=int(np.prod(SHAPE)), options=js_options)  # fmt: skip
    proc = subprocess.run(
        [NODE, str(HERE / "sample_batch.mjs"), json.dumps(request)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    expected = numpy_run(sampler, steps, seed, first, count, options)
    assert len(got["calls"]) == steps
    # float64 throughout on both sides; V8's and libm's exp/log differ in last bits, which the steps carry
    np.testing.assert_allclose(np.asarray(got["x0"]).reshape(expected.shape), expected, rtol=0, atol=1e-9)
    pixels = np.asarray(got["pixels"], dtype=np.uint8).reshape(count, *SHAPE).transpose(0, 2, 3, 1)
    assert np.abs(pixels.astype(int) - to_uint8_nhwc(expected).astype(int)).max() <= 1


def test_js_dpm_solver_lands_on_t0_as_numpy_does():
    """dpm-solver++ with final "step" at times whose last call lies above 0 (a multistep student's): the
    page's loop takes the same last step onto t = 0 as the NumPy sampler, and makes no call there."""
    schedule = NoiseSchedule.from_config(CONFIG)
    times = [199.0, 150.5, 71.25, 12.0]
    options = {"x0": "none", "final": "step"}
    seed, first, count = 3, 0, 2
    request = {
        "schedule": CONFIG.to_dict(),
        "sampler": "dpm-solver++",
        "steps": 4,
        "timesteps": times,
        "seed": seed,
        "first": first,
        "count": count,
        "pixels": int(np.prod(SHAPE)),
        "options": {"percentile": 0.995, **options},
    }
    proc = subprocess.run(
        [NODE, str(HERE / "sample_batch.mjs"), json.dumps(request)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    rng = PerImageNoise(seed, first, count)
    x_T = rng.standard_normal((count, *SHAPE))
    expected = get_sampler("dpm-solver++").sample(eps_model, x_T, schedule, np.array(times), rng=rng, **options)
    assert got["calls"] == times
    np.testing.assert_allclose(np.asarray(got["x0"]).reshape(expected.shape), expected, rtol=0, atol=1e-9)
    jumped = get_sampler("dpm-solver++").sample(eps_model, x_T, schedule, np.array(times), x0="none")
    assert np.abs(jumped - expected).max() > 1e-3  # the option changes the result


def test_js_fitted_options_follow_the_fitted_times_in_use():
    """The page adds the options fitted times were fitted for (web/generate.js fittedOptions), exactly where
    ddpm-run's run_options does: those times in use (no spacing, or "fitted"), not another count or spacing."""
    landing = {"sampler": "dpm-solver++", "timesteps": [999, 600, 80], "options": {"final": "step"}}
    usual = {"sampler": "dpm-solver++", "timesteps": [999, 500, 90, 0]}
    metadata = {"sampling": {"fitted": [landing, usual]}}
    asks = [["dpm-solver++", 3], ["dpm-solver++", 3, "fitted"], ["dpm-solver++", 3, "karras"], ["dpm-solver++", 4]]
    asks.append(["ddim", 3])
    script = (
        "import { fittedOptions } from './runtime/src/ddpm_runtime/web/generate.js';"
        f"const m = {json.dumps(metadata)};"
        f"console.log(JSON.stringify({json.dumps(asks)}.map((a) => fittedOptions(m, ...a))));"
    )
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, cwd=HERE.parent.parent
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"final": "step"}, {"final": "step"}, {}, {}, {}]
