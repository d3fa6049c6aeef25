"""A model file written before class conditioning existed still loads and samples bit-identically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model

HERE = Path(__file__).parent
LEGACY = HERE / "legacy" / "tiny-unconditional-151d252.onnx"
GOLDEN = json.loads((HERE / "golden_samples.json").read_text())


def test_the_old_file_keeps_two_inputs_and_no_classes():
    model = load_onnx_model(LEGACY, "cpu")
    assert [i.name for i in model.session.get_inputs()] == ["x", "t"]
    assert model.metadata.classes is None


@pytest.mark.parametrize("case", sorted(GOLDEN["cases"]))
def test_the_old_file_samples_as_recorded(case):
    recorded = GOLDEN["cases"][case]
    expected = np.frombuffer(bytes.fromhex(recorded["uint8_hex"]), np.uint8).reshape(recorded["shape"])
    model = load_onnx_model(LEGACY, "cpu")
    images = generate(model, model.metadata, SamplingSettings(**recorded["settings"]))
    assert int(np.count_nonzero(images != expected)) == 0
