"""The JSON document an exported model carries (see ``contract.py`` for where it is stored).

It holds everything the runtime needs besides the network: image shape and value range, the noise
schedule, what the network predicts, and where the weights came from. Written by ddpm-export,
read here without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise

from .classes import check_class_names
from .contract import METADATA_FORMAT_VERSION, METADATA_KEY
from .errors import UserError
from .images import VALUE_RANGE
from .schedule import ScheduleConfig

PREDICTION_TYPES = ("epsilon",)


@dataclass(frozen=True)
class ImageSpec:
    channels: int
    height: int
    width: int
    value_range: tuple[float, float] = VALUE_RANGE  # what x_0 means: pixel 0 -> -1, pixel 255 -> 1


@dataclass(frozen=True)
class ClassSpec:
    """A class-conditional model's classes: names of 0..K-1, and the "no class" label (K)."""

    names: tuple[str, ...]
    null_index: int

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class FittedTimesteps:
    """Model-call times fitted to this model for one sampler and call count (``schedule_fit.py``; written
    by ``ddpm fit-schedule``). ``fit``: how it was fitted (error against the reference, start spacing).
    ``options``: sampler options the times were fitted for and run with (``{"final": "step"}``: the
    last call lies above 0 and the solver lands on t = 0 after it); empty for most."""

    sampler: str
    timesteps: tuple[float, ...]  # descending, from T-1 to 0 (or above 0 with options final "step")
    fit: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def to_dict(self) -> dict:
        data = {"sampler": self.sampler, "timesteps": list(self.timesteps), "fit": dict(self.fit)}
        if self.options:  # absent where there are none, so entries without options read as they always did
            data["options"] = dict(self.options)
        return data


@dataclass(frozen=True, kw_only=True)
class GeneratorEntry:
    """A generator file's sampler, baked into its graph (``ddpm export-generator``): what it runs and the
    inputs it takes. ``timesteps``: the times of its model calls; ``options``: every option the sampler
    runs with; ``noise_draws``: slices of step_noise (0: no step_noise input); ``guidance_scale``: the
    default of a class-conditional generator's guidance_scale input (None: unconditional)."""

    sampler: str
    steps: int
    timesteps: tuple[float, ...]
    options: dict
    noise_draws: int
    guidance_scale: float | None = None

    def to_dict(self) -> dict:
        data = {
            "sampler": self.sampler,
            "steps": self.steps,
            "timesteps": list(self.timesteps),
            "options": dict(self.options),
            "noise_draws": self.noise_draws,
        }
        if self.guidance_scale is not None:
            data["guidance_scale"] = self.guidance_scale
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorEntry:
        entry = cls(
            sampler=data["sampler"],
            steps=int(data["steps"]),
            timesteps=tuple(float(t) for t in data["timesteps"]),
            options=dict(data["options"]),
            noise_draws=int(data["noise_draws"]),
            guidance_scale=None if data.get("guidance_scale") is None else float(data["guidance_scale"]),
        )
        if not isinstance(entry.sampler, str) or entry.steps != len(entry.timesteps) or entry.noise_draws < 0:
            raise UserError(
                f"the generator entry needs a sampler, one time per step and noise_draws >= 0, got {data!r}"[:200]
            )
        return entry


@dataclass(frozen=True)
class ModelMetadata:
    image: ImageSpec
    schedule: ScheduleConfig
    prediction_type: str  # "epsilon": the network predicts the added noise (Ho et al. 2020)
    model_config: dict  # the U-Net's UNetConfig as JSON, for provenance and re-export
    training: dict  # steps, ema (bool), checkpoint_sha256, data_fingerprint
    exporter: dict  # versions of torch, onnx, ddpm-export, and the opset
    format_version: int = METADATA_FORMAT_VERSION
    # A class-conditional model (its file takes the input y); None: unconditional, and the document
    # then has no "classes" key at all (readers without class conditioning read it unchanged).
    classes: ClassSpec | None = None
    # Fitted call times, one entry per (sampler, steps), and the sampler and steps ddpm-run uses when
    # none are given (a distilled student's); both empty: the document has no "sampling" key.
    fitted: tuple[FittedTimesteps, ...] = ()
    default_sampling: dict | None = None  # {"sampler": name, "steps": n}
    # A generator file's baked-in sampler (the file maps noise to images); None: the file predicts eps.
    generator: GeneratorEntry | None = None
    # An 8-bit file (``ddpm quantize``): {"mode": "int8", "calibration": {...}, "gate": {...}}; None: float32.
    quantized: dict | None = None

    @property
    def conditional(self) -> bool:
        return self.classes is not None

    def fitted_timesteps(self, sampler: str, steps: int) -> FittedTimesteps | None:
        return next((f for f in self.fitted if f.sampler == sampler and f.steps == steps), None)

    def with_fitted(self, entry: FittedTimesteps) -> ModelMetadata:
        """This document with ``entry`` in place of any earlier fit for the same sampler and steps."""
        kept = tuple(f for f in self.fitted if (f.sampler, f.steps) != (entry.sampler, entry.steps))
        return replace(self, fitted=tuple(sorted((*kept, entry), key=lambda f: (f.sampler, f.steps))))

    def to_json(self) -> str:
        data = asdict(self)
        data["image"]["value_range"] = list(self.image.value_range)
        del data["fitted"], data["default_sampling"], data["generator"], data["quantized"]
        if self.quantized is not None:
            data["quantized"] = dict(self.quantized)
        if self.generator is not None:  # absent otherwise, so eps-model documents read as they always did
            data["generator"] = self.generator.to_dict()
        if self.fitted or self.default_sampling:
            data["sampling"] = {"fitted": [entry.to_dict() for entry in self.fitted]}
            if self.default_sampling:
                data["sampling"]["default"] = dict(self.default_sampling)
        if self.classes is None:
            del data["classes"]
        else:
            data["classes"] = {
                "names": list(self.classes.names),
                "num_classes": self.classes.num_classes,
                "null_index": self.classes.null_index,
            }
        return json.dumps(data, sort_keys=True, allow_nan=False)  # JavaScript's JSON.parse reads no Infinity

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> ModelMetadata:
        """Parse and validate; every problem is a UserError naming ``source``."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{source}: '{METADATA_KEY}' metadata is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"{source}: '{METADATA_KEY}' metadata must be a JSON object")
        version = data.get("format_version")
        if version != METADATA_FORMAT_VERSION:
            raise UserError(
                f"{source}: metadata format version {version!r} is not supported (this runtime reads "
                f"{METADATA_FORMAT_VERSION})"
            )
        try:
            image = data["image"]
            spec = ImageSpec(
                int(image["channels"]),
                int(image["height"]),
                int(image["width"]),
                tuple(float(v) for v in image["value_range"]),
            )
            schedule = ScheduleConfig.from_dict(data["schedule"])
            prediction = data["prediction_type"]
            classes = _class_spec(data["classes"]) if "classes" in data else None
            fitted = _fitted(data["sampling"], schedule.num_timesteps) if "sampling" in data else ()
            default = _default_sampling(data["sampling"]) if "sampling" in data else None
            generator = GeneratorEntry.from_dict(data["generator"]) if "generator" in data else None
            quantized = _quantized(data["quantized"]) if "quantized" in data else None
            result = cls(
                spec,
                schedule,
                prediction,
                dict(data["model_config"]),
                dict(data["training"]),
                dict(data["exporter"]),
                version,
                classes,
                fitted,
                default,
                generator,
                quantized,
            )
        except UserError as exc:
            raise UserError(f"{source}: bad metadata: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source}: bad metadata: missing or malformed field {exc}") from None
        if prediction not in PREDICTION_TYPES:
            raise UserError(
                f"{source}: prediction type {prediction!r} is not supported ({', '.join(PREDICTION_TYPES)})"
            )
        if min(spec.channels, spec.height, spec.width) < 1 or len(spec.value_range) != 2:
            raise UserError(f"{source}: bad metadata: image spec {spec}")
        return result


def _class_spec(data: dict) -> ClassSpec:
    """The "classes" entry; a UserError (which from_json prefixes with the file) for anything malformed."""
    names = tuple(data["names"])
    if not all(isinstance(name, str) for name in names):
        raise UserError("class names must be strings")
    problem = check_class_names(names)
    if problem:
        raise UserError(problem)
    null_index, num_classes = int(data["null_index"]), int(data.get("num_classes", len(names)))
    if num_classes != len(names) or null_index != len(names):
        raise UserError(
            f"{len(names)} class names, num_classes {num_classes}, null_index {null_index} "
            "(the 'no class' label must follow the classes)"
        )
    return ClassSpec(names, null_index)


def _fitted(data: dict, num_timesteps: int) -> tuple[FittedTimesteps, ...]:
    """The "sampling" entry's fitted call times; a UserError for anything a sampler could not use."""
    entries = []
    for item in data.get("fitted", []):
        sampler, times = item["sampler"], tuple(float(t) for t in item["timesteps"])
        if not isinstance(sampler, str) or not times:
            raise UserError(f"fitted timesteps need a sampler name and times, got {item!r}"[:200])
        descending = all(b < a for a, b in pairwise(times))
        if times[0] != num_timesteps - 1 or times[-1] < 0.0 or not descending:
            raise UserError(f"fitted timesteps for {sampler} must descend from {num_timesteps - 1} to at least 0")
        options = item.get("options", {})
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise UserError(f"fitted timesteps for {sampler}: options must be a mapping by name, got {options!r}"[:200])
        entries.append(
            FittedTimesteps(sampler=sampler, timesteps=times, fit=dict(item.get("fit", {})), options=dict(options))
        )
    if len({(e.sampler, e.steps) for e in entries}) != len(entries):
        raise UserError("two fitted schedules for the same sampler and steps")
    return tuple(entries)


def _default_sampling(data: dict) -> dict | None:
    default = data.get("default")
    if default is None:
        return None
    if not isinstance(default.get("sampler"), str) or int(default.get("steps", 0)) < 1:
        raise UserError(f"the default sampling needs a sampler name and steps >= 1, got {default!r}"[:200])
    return {**default, "steps": int(default["steps"])}


def _quantized(data) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
        raise UserError(f"the quantized entry needs a mode, got {data!r}"[:200])
    return dict(data)
