"""Calibration inputs for an 8-bit model: the network's own inputs along its default sampler's trajectories.

Post-training quantization fixes each activation's range from example inputs. A diffusion network sees
very different activations at t = T-1 and near 0, so the examples are the (x, t[, y]) of every model
call that ``ddpm-run sample`` makes with the model's default sampler, steps and guidance, from a few
starting noises (Q-Diffusion, Li et al. 2023: calibration over all the timesteps the sampler visits).
"""

from __future__ import annotations

import numpy as np

from ddpm_runtime import contract
from ddpm_runtime.generate import SamplingSettings, generate, model_defaults
from ddpm_runtime.onnx_model import OnnxEpsModel

CALIBRATION_SEED = 1_000_000  # noises no test or gate uses (they start at seed 0)


def trajectory_feeds(model: OnnxEpsModel, num_images: int, batch_size: int = 8) -> list[dict[str, np.ndarray]]:
    """The feeds of every model call while drawing ``num_images`` with the model's defaults; a class-
    conditional model draws each class in turn with its default guidance (both halves of each call)."""
    metadata = model.metadata
    sampler, steps, options = model_defaults(metadata, None, None)
    labels = None
    if metadata.classes is not None:
        labels = tuple(i % metadata.classes.num_classes for i in range(num_images))
    feeds: list[dict[str, np.ndarray]] = []

    def recording(x, t, y=None):
        feeds.append(contract.feeds(x, t, y))
        return model(x, t, y)

    settings = SamplingSettings(
        num_images=num_images,
        batch_size=batch_size,
        sampler=sampler,
        steps=steps,
        options=options,
        seed=CALIBRATION_SEED,
        labels=labels,
        **({} if labels is None else {"guidance_scale": _guidance(metadata)}),
    )
    generate(recording, metadata, settings)
    return feeds


def _guidance(metadata) -> float:
    from ddpm_runtime.guidance import default_guidance_scale

    return default_guidance_scale(metadata.default_sampling)
