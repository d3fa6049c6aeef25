"""The class names of a class-conditional run, decided once from the data and the user's options.

Where they come from, first match wins:
1. ``--class-names``: a comma-separated list, or a text file with one name per line;
2. the subfolder names of an image folder (``root/<class>/<image>``), as the reader found them;
3. Fashion-MNIST's ten names when the data's path says Fashion-MNIST (its IDX files carry MNIST's
   file names, so nothing else can tell the two apart);
4. the label numbers themselves ("0", "1", ...).

The names travel in the checkpoint and the exported metadata; ``ddpm-run sample --class`` takes a
name or an index, so names are checked here to keep that unambiguous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddpm_runtime.classes import check_class_names

from ..errors import TrainingError
from .dataset import ImageData

# The label order of Fashion-MNIST's IDX files (Xiao et al. 2017, the dataset's README).
FASHION_MNIST_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


# The share of labels replaced by "no class" in training, so that one network also learns the
# unconditional model that classifier-free guidance needs (Ho and Salimans 2022 found 0.1-0.2 best).
DEFAULT_LABEL_DROPOUT = 0.1


@dataclass(frozen=True)
class ClassConditioning:
    """A class-conditional run's classes and label dropout (part of its maths: a resume keeps both).

    Saved in the checkpoint as ``{"classes": {"names": [...], "label_dropout": p}}``; an unconditional
    run has no such entry, so its checkpoint is what a version without class conditioning wrote."""

    names: tuple[str, ...]
    label_dropout: float = DEFAULT_LABEL_DROPOUT

    def __post_init__(self) -> None:
        if not (isinstance(self.label_dropout, float | int) and math.isfinite(self.label_dropout)) or not (
            0.0 <= self.label_dropout < 1.0
        ):
            raise TrainingError(f"--label-dropout must be in [0, 1), got {self.label_dropout}")
        problem = check_class_names(self.names)
        if problem:
            raise TrainingError(problem)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "label_dropout": float(self.label_dropout)}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, source: str = "checkpoint") -> ClassConditioning | None:
        entry = checkpoint.get("classes")
        if entry is None:
            return None
        try:
            return cls(tuple(str(n) for n in entry["names"]), float(entry["label_dropout"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"{source}: bad class entry in checkpoint ({exc})") from None
        except TrainingError as exc:
            raise TrainingError(f"{source}: bad class entry in checkpoint ({exc})") from None


def parse_class_names_option(value: str) -> tuple[str, ...]:
    """``--class-names``: a file of one name per line if such a file exists, else a comma list."""
    path = Path(value)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TrainingError(f"{path}: cannot read class names ({exc})") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        source = str(path)
    else:
        names = [part.strip() for part in value.split(",")]
        source = "--class-names"
    if not names or any(not name for name in names):
        raise TrainingError(f"{source}: class names must be non-empty, got {value!r}")
    return tuple(names)


def dataset_labels(data: ImageData) -> np.ndarray:
    """The data's labels, checked to be usable as class indices 0..K-1."""
    if data.labels is None:
        raise TrainingError(
            f"{data.source}: --class-conditional needs labels, and this data has none (IDX with a labels "
            "file, a CSV with a label column, an .npz with y_train/labels, or an image folder with class subfolders)"
        )
    labels = data.labels
    if labels.size and labels.min() < 0:
        raise TrainingError(f"{data.source}: class labels must be 0 or more, found {int(labels.min())}")
    if int(labels.max()) < 1:
        raise TrainingError(f"{data.source}: the labels name only one class; conditioning needs at least two")
    return labels


def _says_fashion(source: str) -> bool:
    """The data path or one of its two parent folders names Fashion-MNIST (``.../fashion-mnist/raw/...``)."""
    return any("fashion" in part.lower() for part in Path(source).resolve().parts[-3:])


def resolve_class_names(data: ImageData, given: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The names of classes 0..K-1 for a conditional run on ``data`` (see the module docstring)."""
    labels = dataset_labels(data)
    needed = int(labels.max()) + 1
    if given is not None:
        names, source = tuple(given), "--class-names"
    elif data.class_names is not None:
        names, source = tuple(data.class_names), f"{data.source} (subfolder names)"
    elif needed <= len(FASHION_MNIST_NAMES) and _says_fashion(data.source):
        names, source = FASHION_MNIST_NAMES, f"{data.source} (Fashion-MNIST)"
    else:
        names, source = tuple(str(i) for i in range(needed)), "label numbers"
    if len(names) < needed:
        raise TrainingError(
            f"{data.source}: labels go up to {needed - 1}, but {source} names only {len(names)} classes"
        )
    problem = check_class_names(names)
    if problem:
        raise TrainingError(f"{source}: {problem}")
    return names
