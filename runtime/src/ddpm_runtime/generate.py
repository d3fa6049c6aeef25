"""Generate images: batches of x_T through a sampler to uint8 images. No files, no printing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .default_sampling import EPSILON_DEFAULT_SAMPLER, resolve_default
from .errors import UserError
from .guidance import DEFAULT_GUIDANCE_SCALE, check_guidance_scale, guided_eps_model
from .images import to_uint8_nhwc
from .metadata import ModelMetadata
from .noise import PerImageNoise
from .samplers import REGISTRY, all_options, get_sampler
from .schedule import NoiseSchedule
from .timesteps import DEFAULT_RHO, SPACINGS, sampling_timesteps

FITTED = "fitted"  # --spacing: the model's own fitted times (metadata "sampling"), not a formula


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    num_images: int = 16
    # Images per model call; the images do not depend on it (nor on how the rows are split over sessions).
    # Small batches keep a call's activations in the CPU's caches, and on the CPU each call's rows are
    # split over one single-threaded session per core (row_split.py; docs/benchmarks/speed.md, "Sampling
    # batch and row split").
    # Fixed, not per machine: a job split over machines must make the same batches. With guidance a call
    # holds twice as many rows.
    batch_size: int = 8
    sampler: str = EPSILON_DEFAULT_SAMPLER  # a name in samplers.REGISTRY (default_sampling.py says why)
    steps: int | None = None  # model calls per image; None: the sampler's default_steps
    seed: int = 0  # image i always gets the noise of default_rng([seed, i])
    options: dict = field(default_factory=dict)  # the sampler's keyword options that were given
    # How the model calls are spread over t: timesteps.SPACINGS, or "fitted" (the model's own fitted times
    # for this sampler and steps, ``ddpm fit-schedule``); None: fitted where the model has them, else the sampler's.
    spacing: str | None = None
    rho: float = DEFAULT_RHO  # the karras spacing's exponent
    # Class-conditional models: the class of each image (len num_images), or None for unconditional
    # samples ("no class"); and classifier-free guidance's w (guidance.py; 0: the plain conditional model).
    labels: tuple[int, ...] | None = None
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE

    def resolved_steps(self, num_timesteps: int) -> int:
        steps = self.steps if self.steps is not None else get_sampler(self.sampler).default_steps
        return num_timesteps if steps is None else steps

    def resolved_options(self) -> dict:
        """The sampler's options as its registry entry declares them (what --help shows), with the given
        ones in their place; options of other samplers given at their neutral value are dropped."""
        spec = get_sampler(self.sampler)
        declared = {option.name: option.default for option in spec.options}
        return {**declared, **{k: v for k, v in self.options.items() if k in declared}}

    def resolved_spacing(self) -> str:
        return self.spacing if self.spacing is not None else get_sampler(self.sampler).default_spacing

    def validate(self, num_timesteps: int) -> None:
        spec = get_sampler(self.sampler)
        if self.num_images < 1:
            raise UserError(f"-n/--num-images must be at least 1, got {self.num_images}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.seed < 0:
            raise UserError(f"--seed must be 0 or more, got {self.seed}")
        steps = self.resolved_steps(num_timesteps)
        if not 1 <= steps <= num_timesteps:
            raise UserError(f"--steps must be between 1 and T={num_timesteps} (the model's schedule), got {steps}")
        if self.resolved_spacing() not in (*SPACINGS, FITTED):
            raise UserError(f"unknown --spacing {self.spacing!r} (choose from {', '.join((*SPACINGS, FITTED))})")
        if not self.rho > 0:
            raise UserError(f"--rho must be positive, got {self.rho}")
        known, accepted = all_options(), {option.name: option for option in spec.options}
        for name, value in self.options.items():
            if name not in known:
                raise UserError(f"unknown sampler option {name!r}")
            if name not in accepted:
                if value == known[name].default:
                    continue  # e.g. --eta 0 with ddpm: the neutral value asks for nothing
                users = [s.name for s in REGISTRY.values() if name in {o.name for o in s.options}]
                raise UserError(f"{known[name].flag} applies to the {' and '.join(users)} sampler only")
            complaint = accepted[name].check(value) if accepted[name].check else None
            if complaint:
                raise UserError(complaint)
        check_guidance_scale(self.guidance_scale)

    def validate_classes(self, metadata: ModelMetadata, source: str = "model") -> None:
        """The requested classes against the model: only a conditional model takes them, and only its own."""
        if self.labels is None:
            return
        if metadata.classes is None:
            raise UserError(f"{source}: is an unconditional model; it cannot draw a chosen class (no --class)")
        if len(self.labels) != self.num_images:
            raise UserError(f"{len(self.labels)} class labels for {self.num_images} images")
        bad = [label for label in self.labels if not 0 <= label < metadata.classes.num_classes]
        if bad:
            raise UserError(f"{source}: has classes 0..{metadata.classes.num_classes - 1}, asked for {bad[0]}")
        if self.guidance_scale and metadata.training.get("label_dropout") == 0:
            raise UserError(
                f"{source}: was trained without label dropout, so it has no unconditional model to guide "
                "with; use --guidance-scale 0"
            )


def model_defaults(metadata: ModelMetadata, sampler: str | None, steps: int | None, source: str = "model"):
    """(sampler, steps, options) for a request that may leave the sampler and steps out, by the model's
    own default sampling (``default_sampling.resolve_default``)."""
    return resolve_default(metadata.default_sampling, sampler, steps, source)


def fitted_entry(settings: SamplingSettings, metadata: ModelMetadata, schedule: NoiseSchedule):
    """The model's fitted times this request samples at (a ``FittedTimesteps``), or None: those for its
    sampler and steps when the spacing is "fitted", or not given and the model has them."""
    if settings.spacing not in (None, FITTED):
        return None
    return metadata.fitted_timesteps(settings.sampler, settings.resolved_steps(schedule.num_timesteps))


def run_options(settings: SamplingSettings, metadata: ModelMetadata, schedule: NoiseSchedule) -> dict:
    """The options the sampler runs with: as declared, then those the fitted times in use were fitted for
    (``final`` step: they need it), then the given ones."""
    entry = fitted_entry(settings, metadata, schedule)
    declared = settings.resolved_options()
    own = {k: v for k, v in (entry.options if entry is not None else {}).items() if k in declared}
    given = {k: v for k, v in settings.options.items() if k in declared}
    return {**declared, **own, **given}


def model_timesteps(settings: SamplingSettings, metadata: ModelMetadata, schedule: NoiseSchedule) -> np.ndarray:
    """The times of the model calls: the model's fitted ones for this sampler and steps when the spacing
    is "fitted", or not given and the model has them; otherwise the spacing's formula."""
    steps = settings.resolved_steps(schedule.num_timesteps)
    if settings.spacing in (None, FITTED):
        fitted = fitted_entry(settings, metadata, schedule)
        if fitted is not None:
            return np.asarray(fitted.timesteps, dtype=np.float64)
        if settings.spacing == FITTED:
            have = ", ".join(f"{f.sampler} {f.steps}" for f in metadata.fitted) or "none"
            raise UserError(
                f"the model has no fitted timesteps for {settings.sampler} at {steps} steps (it has: {have}; "
                "see ddpm fit-schedule)"
            )
    return sampling_timesteps(schedule, steps, settings.resolved_spacing(), settings.rho)


def batch_ranges(num_images: int, batch_size: int) -> list[range]:
    """The image indices of each batch: [0, B), [B, 2B), ... A job split into shards or resumed runs
    these very batches, so every image comes out of the same model calls as in one uninterrupted run."""
    return [range(first, min(first + batch_size, num_images)) for first in range(0, num_images, batch_size)]


def generate_batches(
    eps_model: Callable[..., np.ndarray],
    metadata: ModelMetadata,
    settings: SamplingSettings,
    batch_indices: Iterable[int] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(batch index, (count, H, W, C) uint8 images) for each batch of ``batch_ranges`` listed in
    ``batch_indices`` (default: all), in that order. ``on_step(batch_index, step_index)`` after every
    model call. ``eps_model(x, t)``, or for class labels ``eps_model(x, t, y)`` (``OnnxEpsModel`` takes
    both). With labels and guidance, each model call holds twice the batch (see guidance.py)."""
    schedule = NoiseSchedule.from_config(metadata.schedule)
    settings.validate(schedule.num_timesteps)
    settings.validate_classes(metadata)
    if metadata.generator is not None:
        yield from _generator_batches(eps_model, metadata, settings, batch_indices, on_step)
        return
    sample = get_sampler(settings.sampler).sample
    options = run_options(settings, metadata, schedule)
    timesteps = model_timesteps(settings, metadata, schedule)
    image = metadata.image
    ranges = batch_ranges(settings.num_images, settings.batch_size)
    for batch_index in range(len(ranges)) if batch_indices is None else batch_indices:
        first, count = ranges[batch_index].start, len(ranges[batch_index])
        rng = PerImageNoise(settings.seed, first, count)
        x_T = rng.standard_normal((count, image.channels, image.height, image.width))
        callback = None if on_step is None else (lambda i, t, x, b=batch_index: on_step(b, i))
        model = eps_model
        if settings.labels is not None:
            labels = np.asarray(settings.labels[first : first + count], dtype=np.int64)
            model = guided_eps_model(eps_model, labels, metadata.classes.null_index, settings.guidance_scale)
        x0 = sample(model, x_T, schedule, timesteps, rng=rng, callback=callback, **options)
        yield batch_index, to_uint8_nhwc(x0)


def _generator_batches(model, metadata: ModelMetadata, settings: SamplingSettings, batch_indices, on_step):
    """``generate_batches`` for a generator file (``generator_model``): the same noises, one session call
    per batch."""
    from .generator_model import check_generator_request, draw_batch

    check_generator_request(settings, metadata)
    image, steps = metadata.image, metadata.generator.steps
    ranges = batch_ranges(settings.num_images, settings.batch_size)
    for batch_index in range(len(ranges)) if batch_indices is None else batch_indices:
        first, count = ranges[batch_index].start, len(ranges[batch_index])
        rng = PerImageNoise(settings.seed, first, count)
        x_T = rng.standard_normal((count, image.channels, image.height, image.width))
        labels = None if settings.labels is None else np.asarray(settings.labels[first : first + count], np.int64)
        images = draw_batch(model, rng, x_T, labels, settings.guidance_scale)
        for step in range(steps) if on_step is not None else ():
            on_step(batch_index, step)
        yield batch_index, images


def generate(
    eps_model: Callable[..., np.ndarray],
    metadata: ModelMetadata,
    settings: SamplingSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """All images as (N, H, W, C) uint8 (see ``generate_batches``)."""
    return np.concatenate([images for _, images in generate_batches(eps_model, metadata, settings, None, on_step)])
