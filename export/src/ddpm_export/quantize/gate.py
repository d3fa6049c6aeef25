"""The 8-bit model's gate: its images against the float32 model's for the same noise.

An 8-bit network cannot match float32 eps to 1e-4, and what matters is the images: both models draw
the same starting noises with the model's default sampler, and the mean absolute pixel difference
must stay under a threshold (docs/benchmarks/speed.md, "8-bit models", has the measured values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddpm_runtime.generate import SamplingSettings, generate, model_defaults

GATE_IMAGES = 16
DEFAULT_MAX_IMAGE_DIFF = 8.0  # grey levels, mean over pixels


@dataclass(frozen=True)
class ImageGateReport:
    images: int
    mean_difference: float  # grey levels, mean |int8 - float32| over every pixel
    max_allowed: float

    @property
    def passed(self) -> bool:
        return bool(self.mean_difference <= self.max_allowed)

    def describe(self) -> str:
        return (
            f"{self.images} images from the same noise: mean pixel difference {self.mean_difference:.2f} "
            f"grey levels (at most {self.max_allowed:g})"
        )


def compare_images(reference, candidate, max_allowed: float, count: int = GATE_IMAGES) -> ImageGateReport:
    """Both eps-models draw ``count`` images (seed 0, the model's default sampler; every class in turn
    for a class-conditional model)."""
    metadata = reference.metadata
    sampler, steps, options = model_defaults(metadata, None, None)
    labels = None
    if metadata.classes is not None:
        labels = tuple(i % metadata.classes.num_classes for i in range(count))
    settings = SamplingSettings(num_images=count, sampler=sampler, steps=steps, options=options, labels=labels)
    expected = generate(reference, metadata, settings).astype(np.int16)
    drawn = generate(candidate, candidate.metadata, settings).astype(np.int16)
    difference = float(np.abs(drawn - expected).mean())
    return ImageGateReport(images=count, mean_difference=difference, max_allowed=max_allowed)
