"""The 8-bit model's gate: its images against the float32 model's for the same noise.

An 8-bit network cannot match float32 eps to 1e-4, and what matters is the images: both models draw
the same starting noises with the model's default sampler; the mean absolute pixel difference must
stay under one threshold and, when a classifier is given (``ddpm eval``'s CNN), the share of images
it puts in another class under a second (docs/benchmarks/speed.md, "Quantized models", has the measured
values behind the defaults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ddpm_runtime.generate import SamplingSettings, generate, model_defaults

GATE_IMAGES = 64
DEFAULT_MAX_IMAGE_DIFF = {"int8": 8.0, "fp16": 0.5}  # grey levels, mean over pixels, per mode
DEFAULT_MAX_CLASS_CHANGE = 0.25  # share of the gate's images

Classify = Callable[[np.ndarray], np.ndarray]  # uint8 images [N, H, W, C] -> class indices [N]


@dataclass(frozen=True)
class ImageGateReport:
    images: int
    mean_difference: float  # grey levels, mean |8-bit - float32| over every pixel
    max_allowed: float
    class_change: float | None = None  # share of images the classifier puts in another class; None: not checked
    max_class_change: float | None = None

    @property
    def passed(self) -> bool:
        pixels = self.mean_difference <= self.max_allowed
        classes = self.class_change is None or self.class_change <= self.max_class_change
        return bool(pixels and classes)

    def describe(self) -> str:
        text = (
            f"{self.images} images from the same noise: mean pixel difference {self.mean_difference:.2f} "
            f"grey levels (at most {self.max_allowed:g})"
        )
        if self.class_change is None:
            return text + ", classes not checked (no --real)"
        return text + f", class changed for {self.class_change:.1%} (at most {self.max_class_change:.0%})"


def compare_images(
    reference,
    candidate,
    max_allowed: float,
    count: int = GATE_IMAGES,
    classify: Classify | None = None,
    max_class_change: float = DEFAULT_MAX_CLASS_CHANGE,
) -> ImageGateReport:
    """Both eps-models draw ``count`` images (seed 0, the model's default sampler; every class in turn
    for a class-conditional model); ``classify`` (optional) labels both sets."""
    metadata = reference.metadata
    sampler, steps, options = model_defaults(metadata, None, None)
    labels = None
    if metadata.classes is not None:
        labels = tuple(i % metadata.classes.num_classes for i in range(count))
    settings = SamplingSettings(num_images=count, sampler=sampler, steps=steps, options=options, labels=labels)
    expected = generate(reference, metadata, settings)
    drawn = generate(candidate, candidate.metadata, settings)
    difference = float(np.abs(drawn.astype(np.int16) - expected.astype(np.int16)).mean())
    if classify is None:
        return ImageGateReport(images=count, mean_difference=difference, max_allowed=max_allowed)
    changed = float(np.mean(np.asarray(classify(drawn)) != np.asarray(classify(expected))))
    return ImageGateReport(count, difference, max_allowed, changed, max_class_change)
