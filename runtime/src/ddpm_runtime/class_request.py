"""What `ddpm-run sample` was asked to draw: how many images, of which classes, with what guidance.

Turns the --class / --per-class / -n / --guidance-scale options into per-image labels, with every
mistake (a class for an unconditional model, an unknown class, -n beside --class) a UserError.
"""

from __future__ import annotations

from dataclasses import dataclass

from .classes import requested_classes
from .errors import UserError
from .generate import SamplingSettings
from .guidance import DEFAULT_GUIDANCE_SCALE, check_guidance_scale, default_guidance_scale
from .metadata import ModelMetadata

DEFAULT_NUM_IMAGES = SamplingSettings.num_images  # -n's default, when no --class is given
DEFAULT_PER_CLASS = 8  # images per class with --class when --per-class is not given


@dataclass(frozen=True)
class ClassRequest:
    num_images: int
    labels: tuple[int, ...] | None  # the class of each image; None: unconditional ("no class")
    per_class: int | None  # images per requested class: the grid's row length
    guidance_scale: float
    class_names: tuple[str, ...] | None = None  # the model's names of classes 0..K-1, when labels are asked for

    def describe(self) -> str:
        if self.labels is None:
            return ""
        count = len(self.labels) // self.per_class
        return f", {count} class(es) x {self.per_class}, guidance scale {self.guidance_scale:g}"


def class_request(
    source,
    metadata: ModelMetadata,
    num_images: int | None,
    classes: tuple[str, ...],
    per_class: int | None,
    guidance_scale: float | None,
) -> ClassRequest:
    if not classes:
        if per_class is not None:
            raise UserError("--per-class needs --class (which classes to draw)")
        if guidance_scale is not None:
            raise UserError("--guidance-scale needs --class (guidance steers towards a class)")
        count = DEFAULT_NUM_IMAGES if num_images is None else num_images
        return ClassRequest(count, None, None, DEFAULT_GUIDANCE_SCALE)
    if metadata.classes is None:
        raise UserError(f"{source}: is an unconditional model; it cannot draw a chosen class (no --class)")
    if num_images is not None:
        raise UserError("-n/--num-images and --class do not go together: give --per-class (images per class)")
    per_class = DEFAULT_PER_CLASS if per_class is None else per_class
    if per_class < 1:
        raise UserError(f"--per-class must be at least 1, got {per_class}")
    scale = default_guidance_scale(metadata.default_sampling) if guidance_scale is None else guidance_scale
    check_guidance_scale(scale)
    indices = requested_classes(classes, metadata.classes.names)
    labels = tuple(index for index in indices for _ in range(per_class))
    return ClassRequest(len(labels), labels, per_class, scale, metadata.classes.names)
