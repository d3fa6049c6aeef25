"""The generator's gate: its images against ddpm-run's sampler on the plain model file, for the same noise.

The same noise means the same numbers: the generator takes float32 noise, so the reference runs the
registry sampler (float64, as ddpm-run) from those float32 values. Rows of the check cover every class
of a class-conditional model, with its default guidance scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddpm_runtime.generator_model import GeneratorModel
from ddpm_runtime.guidance import guided_eps_model
from ddpm_runtime.images import to_uint8_nhwc
from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.onnx_model import OnnxEpsModel
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.schedule import NoiseSchedule

CHECK_IMAGES = 8
MIN_EQUAL = 0.999  # share of pixels that must be equal; every other one may differ by one grey level
MAX_DIFFERENCE = 1


@dataclass(frozen=True)
class GateReport:
    images: int
    equal: float  # share of equal pixels
    max_difference: int  # in grey levels

    @property
    def passed(self) -> bool:
        return self.equal >= MIN_EQUAL and self.max_difference <= MAX_DIFFERENCE

    def describe(self) -> str:
        return (
            f"{self.images} images against ddpm-run's sampler for the same noise: {self.equal:.4%} of pixels equal, "
            f"largest difference {self.max_difference} grey level(s)"
        )


class _Draws:
    """``rng`` for the reference sampler: hands out the given noise in order."""

    def __init__(self, noise):
        self.noise = iter(noise)

    def standard_normal(self, shape) -> np.ndarray:
        return next(self.noise)


def noise_for(generator: GeneratorModel, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """x_T and step_noise as float32, drawn the way ddpm-run draws them (noise.PerImageNoise)."""
    image, draws = generator.metadata.image, generator.metadata.generator.noise_draws
    rng = PerImageNoise(seed, 0, count)
    shape = (count, image.channels, image.height, image.width)
    x_T = rng.standard_normal(shape).astype(np.float32)
    step_noise = np.stack([rng.standard_normal(shape) for _ in range(draws)]).astype(np.float32) if draws else None
    return x_T, step_noise


def reference_images(model: OnnxEpsModel, generator: GeneratorModel, x_T, step_noise, labels, scale) -> np.ndarray:
    """ddpm-run's images for this noise: the registry sampler with the generator's times and options."""
    entry = generator.metadata.generator
    eps_model = model
    if labels is not None:
        eps_model = guided_eps_model(model, labels, model.metadata.classes.null_index, scale)
    schedule = NoiseSchedule.from_config(model.metadata.schedule)
    noise = [] if step_noise is None else [n.astype(np.float64) for n in step_noise]
    x_0 = get_sampler(entry.sampler).sample(
        eps_model,
        x_T.astype(np.float64),
        schedule,
        np.asarray(entry.timesteps, dtype=np.float64),
        rng=_Draws(noise),
        **entry.options,
    )
    return to_uint8_nhwc(x_0)


def compare(model: OnnxEpsModel, generator: GeneratorModel, count: int = CHECK_IMAGES, seed: int = 0) -> GateReport:
    x_T, step_noise = noise_for(generator, count, seed)
    labels, scale = None, None
    if generator.metadata.classes is not None:
        labels = np.arange(count, dtype=np.int64) % generator.metadata.classes.num_classes
        scale = generator.metadata.generator.guidance_scale
    expected = reference_images(model, generator, x_T, step_noise, labels, scale).astype(np.int16)
    drawn = generator.draw(x_T, step_noise, labels, scale).astype(np.int16)
    difference = np.abs(drawn - expected)
    return GateReport(images=count, equal=float(np.mean(difference == 0)), max_difference=int(difference.max()))
