"""The JSON document an exported model carries (see ``contract.py`` for where it is stored).

It holds everything the runtime needs besides the network: image shape and value range, the noise
schedule, what the network predicts, and where the weights came from. Written by ddpm-export,
read here without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

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
class ModelMetadata:
    image: ImageSpec
    schedule: ScheduleConfig
    prediction_type: str  # "epsilon": the network predicts the added noise (Ho et al. 2020)
    model_config: dict  # the U-Net's UNetConfig as JSON, for provenance and re-export
    training: dict  # steps, ema (bool), checkpoint_sha256, data_fingerprint
    exporter: dict  # versions of torch, onnx, ddpm-export, and the opset
    format_version: int = METADATA_FORMAT_VERSION
    # A class-conditional model (its file takes the input y); None: unconditional, and the document
    # then has no "classes" key at all, exactly as before conditioning existed.
    classes: ClassSpec | None = None

    @property
    def conditional(self) -> bool:
        return self.classes is not None

    def to_json(self) -> str:
        data = asdict(self)
        data["image"]["value_range"] = list(self.image.value_range)
        if self.classes is None:
            del data["classes"]
        else:
            data["classes"] = {
                "names": list(self.classes.names),
                "num_classes": self.classes.num_classes,
                "null_index": self.classes.null_index,
            }
        return json.dumps(data, sort_keys=True)

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
            result = cls(
                spec,
                schedule,
                prediction,
                dict(data["model_config"]),
                dict(data["training"]),
                dict(data["exporter"]),
                version,
                classes,
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
