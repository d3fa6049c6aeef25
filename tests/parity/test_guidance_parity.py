"""Classifier-free guidance in NumPy (one model call of twice the batch) against a torch reference
(two separate calls, Ho and Salimans 2022, Algorithm 2), per call and over a whole trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.guidance import guided_eps_model
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import spaced_timesteps
from ddpm_training.diffusion.torch_eps import numpy_eps_model
from ddpm_training.model.config import UNetConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import load_checkpoint

from data_helpers import CLASS_NAMES
from reference import torch_samplers as ref

NULL = len(CLASS_NAMES)
AB = torch.tensor(NoiseSchedule.from_config().alpha_bars)


def conditional_model(path):
    ckpt = load_checkpoint(path)
    model = Unet(UNetConfig.from_dict(ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["ema"])
    return model


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5])
def test_guided_eps_equals_the_two_call_reference(tiny_conditional_trained, w):
    model = conditional_model(tiny_conditional_trained)
    rng = np.random.default_rng(int(w * 10))
    x = rng.standard_normal((5, 1, 12, 12)).astype(np.float32)
    t = rng.uniform(0, 999, 5).astype(np.float32)
    y = np.array([0, 1, 2, NULL, 1])
    got = guided_eps_model(numpy_eps_model(model), y, NULL, w)(x, t)
    expected = ref.classifier_free_guidance(
        model, torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y), NULL, w
    )
    # float32 model outputs, batched differently (one call of 10 rows against two of 5): 1e-5 per unit of scale
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-5 * (1 + 2 * w))
    # and guidance does something: the guided eps differs from the plain conditional one
    if w:
        assert np.abs(got - guided_eps_model(numpy_eps_model(model), y, NULL, 0.0)(x, t)).max() > 1e-4


def test_guided_trajectory_torch_reference_vs_onnx_numpy(tiny_conditional_trained, tiny_conditional_onnx):
    """torch model + reference guidance + torch DDIM against ONNX Runtime + NumPy guidance + NumPy DDIM."""
    model = conditional_model(tiny_conditional_trained)
    labels = (0, 1, 2, 2)
    w = 2.0
    timesteps = spaced_timesteps(1000, 20)
    seeds = [np.random.default_rng([5, i]) for i in range(len(labels))]  # PerImageNoise's draws for seed 5
    x_T = np.stack([g.standard_normal((1, 12, 12)) for g in seeds])

    def guided(x, t):
        return ref.classifier_free_guidance(model, x, t, torch.tensor(labels), NULL, w).float()

    expected = ref.sample_ddim_torch(guided, torch.tensor(x_T), AB, timesteps).numpy()
    onnx_model = load_onnx_model(tiny_conditional_onnx, "cpu")
    # the reference DDIM keeps x_0 as it is: ddim's declared default clips it, so say "none"
    settings = SamplingSettings(
        num_images=4,
        batch_size=4,
        sampler="ddim",
        steps=20,
        seed=5,
        options={"x0": "none"},
        labels=labels,
        guidance_scale=w,
    )
    got = generate(onnx_model, onnx_model.metadata, settings)
    expected_uint8 = np.rint(np.clip((expected + 1) * 127.5, 0, 255)).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.abs(got.astype(int) - expected_uint8).max() <= 1  # within one grey level after rounding
