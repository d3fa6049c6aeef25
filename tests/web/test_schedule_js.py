"""The page's schedule and call times (web/schedule.js, web/timesteps.js) against ddpm_runtime's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.timesteps import sampling_timesteps

HERE = Path(__file__).parent
NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs where it is missing

CONFIGS = [ScheduleConfig(), ScheduleConfig(kind="cosine", num_timesteps=400), ScheduleConfig(num_timesteps=50)]
STEPS = [1, 2, 5, 10, 20]
PROBES = [0.0, 0.25, 3.5, 17.0, 48.75, 49.0]  # inside every config's [0, T-1]


def test_schedule_and_spacings_match_numpy():
    request = json.dumps({"configs": [c.to_dict() for c in CONFIGS], "steps": STEPS, "probes": PROBES})
    proc = subprocess.run([NODE, str(HERE / "schedule_times.mjs"), request], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for config, got in zip(CONFIGS, json.loads(proc.stdout), strict=True):
        schedule = NoiseSchedule.from_config(config)
        # Same formulas in float64; libm's exp/log/cos may differ from V8's in the last bit.
        np.testing.assert_allclose(got["alphaBars"], schedule.alpha_bars, rtol=1e-13, atol=0)
        np.testing.assert_allclose(got["probes"], schedule.alpha_bar_at(PROBES), rtol=1e-12, atol=0)
        for spacing, per_steps in got["times"].items():
            for steps, times in zip(STEPS, per_steps, strict=True):
                expected = sampling_timesteps(schedule, steps, spacing)
                np.testing.assert_allclose(times, expected, rtol=0, atol=1e-9, err_msg=f"{config} {spacing} {steps}")
