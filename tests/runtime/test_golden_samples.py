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

GOLDEN = json.loads((Path(__file__).with_name("golden_samples.json")).read_text())


@pytest.mark.parametrize("case", sorted(GOLDEN["cases"]))
def test_samples_are_bit_identical_to_the_recorded_ones(tiny_onnx, case):
    recorded = GOLDEN["cases"][case]
    expected = np.frombuffer(bytes.fromhex(recorded["uint8_hex"]), np.uint8).reshape(recorded["shape"])
    model = load_onnx_model(tiny_onnx, "cpu")
    images = generate(model, model.metadata, SamplingSettings(**recorded["settings"]))
    differing = int(np.count_nonzero(images != expected))
    assert differing == 0, f"{differing} of {expected.size} pixels differ from the recorded samples"
