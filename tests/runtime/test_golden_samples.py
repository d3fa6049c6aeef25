"""Refactors must not change what users get: the samples of fixed settings equal those written before.

golden_samples.json holds, for the tiny model of tests/conftest.py, the uint8 images that
``generate()`` returned at commit 8b85890 (before the sampler registry and the model contract). The
model file is reproducible: same torch, same training steps, same export, same bytes. If a change
is *meant* to alter samples, say so in its commit and regenerate the file with the new code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

MAX_GREY_LEVELS = 1  # per pixel: a rounding that moves a value across one uint8 boundary
MAX_DIFFERING = 0.01  # share of pixels that may differ at all
GOLDEN = json.loads((Path(__file__).with_name("golden_samples.json")).read_text())


@pytest.mark.parametrize("case", sorted(GOLDEN["cases"]))
def test_samples_equal_the_recorded_ones_up_to_rounding(tiny_onnx, case):
    recorded = GOLDEN["cases"][case]
    expected = np.frombuffer(bytes.fromhex(recorded["uint8_hex"]), np.uint8).reshape(recorded["shape"])
    model = load_onnx_model(tiny_onnx, "cpu")
    images = generate(model, model.metadata, SamplingSettings(**recorded["settings"]))
    difference = np.abs(images.astype(np.int16) - expected)
    differing = int(np.count_nonzero(difference))
    assert difference.max() <= MAX_GREY_LEVELS, f"a pixel differs by {difference.max()} grey levels"
    assert differing <= MAX_DIFFERING * expected.size, f"{differing} of {expected.size} pixels differ"
