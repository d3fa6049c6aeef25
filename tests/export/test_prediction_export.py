"""Models trained to predict v or EDM's F export as eps models: the graph converts, checked against
the conversion computed by hand from the torch network's output on the runtime's float64 schedule."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ddpm_export.onnx_export import export_onnx
from ddpm_export.source import load_source
from ddpm_export.torchscript_export import export_torchscript, load_torchscript
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_training.model.config import UNetConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import load_checkpoint

from cli_helpers import run_ddpm_run
from data_helpers import make_checkpoint

SCHEDULE = NoiseSchedule.from_config()


def reference_eps(network_output, x, t, kind, sigma_data=0.5):
    ab = SCHEDULE.alpha_bar_at(t.astype(np.float64))[:, None, None, None]
    if kind == "v":
        return np.sqrt(ab) * network_output + np.sqrt(1 - ab) * x
    sigma = np.sqrt((1 - ab) / ab)
    big_x = x / np.sqrt(ab)
    c_skip, c_out = sigma_data**2 / (sigma**2 + sigma_data**2), sigma * sigma_data / np.sqrt(sigma**2 + sigma_data**2)
    return (big_x - (c_skip * big_x + c_out * network_output)) / sigma  # eps = (x - D) / sigma


@pytest.mark.parametrize("kind", ["v", "edm"])
def test_exported_graph_outputs_eps_of_what_the_network_predicts(kind, tmp_path, capsys):
    checkpoint = tmp_path / "ckpt.pt"
    make_checkpoint(checkpoint, "tiny", 12, steps=2, prediction=kind, noise_levels="log-normal")
    export_onnx(load_source(checkpoint), tmp_path / "model.onnx")
    export_torchscript(load_source(checkpoint), tmp_path / "model.pt")

    ckpt = load_checkpoint(checkpoint)
    network = Unet(UNetConfig.from_dict(ckpt["model_config"])).eval()
    network.load_state_dict(ckpt["ema"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 12, 12)).astype(np.float32)
    t = np.array([0.0, 0.5, 10.0, 333.3, 900.0, 999.0], np.float32)
    ab = SCHEDULE.alpha_bar_at(t.astype(np.float64))[:, None, None, None]
    sigma2 = (1 - ab) / ab
    net_in = x if kind == "v" else x / np.sqrt(ab) / np.sqrt(sigma2 + 0.25)  # EDM's c_in x
    with torch.no_grad():
        output = network(torch.from_numpy(net_in.astype(np.float32)), torch.from_numpy(t)).double().numpy()
    expected = reference_eps(output, x.astype(np.float64), t, kind)

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x, "t": t})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    scripted, document = load_torchscript(tmp_path / "model.pt")
    with torch.no_grad():
        np.testing.assert_allclose(scripted(torch.from_numpy(x), torch.from_numpy(t)).numpy(), expected, atol=1e-4)

    metadata = json.loads(document)
    assert metadata["prediction_type"] == "epsilon"  # the contract: every model file outputs eps
    assert metadata["training"]["network_prediction"]["kind"] == kind
    result = run_ddpm_run(capsys, "info", tmp_path / "model.onnx")
    assert f"the network predicts {kind}" in result.out
    result = run_ddpm_run(capsys, "sample", tmp_path / "model.onnx", "-n", "2", "--steps", "3", "--out", tmp_path / "s")
    assert result.code == 0, result.err
    # a v model's file states its default sampler; an epsilon model's leaves it to ddpm-run
    if kind == "v":
        assert metadata["sampling"]["default"] == {"sampler": "dpm-solver++-sde", "steps": 20}
        assert f"{tmp_path / 'model.onnx'}: dpm-solver++-sde, 3 steps" in result.err
    else:
        assert "sampling" not in metadata and "dpm-solver++-sde, 3 steps" in result.err
