"""A folder of PNG / JPEG images, searched recursively.

If every image sits in a direct subfolder of the root, the subfolder names are the class labels
(the common ``root/<class>/<image>`` layout); otherwise there are no labels. All images must share
one size. Grey images become 1 channel; if any image has colour, all become 3 channels (RGB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TrainingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_folder(folder: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    from PIL import Image, UnidentifiedImageError

    paths = list_images(folder)
    if not paths:
        raise TrainingError(f"{folder}: no PNG or JPEG images found in this folder")
    arrays = []
    size = None
    for path in paths:
        try:
            with Image.open(path) as image:
                grey = image.mode in _GREY_MODES
                array = np.asarray(image.convert("L" if grey else "RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise TrainingError(f"{path}: cannot decode image ({exc})") from None
        if size is None:
            size = array.shape[:2]
        elif array.shape[:2] != size:
            raise TrainingError(
                f"{path}: image is {array.shape[1]}x{array.shape[0]} but {paths[0]} is {size[1]}x{size[0]}"
                " (all images must have one size)"
            )
        arrays.append(array)
    if size[0] != size[1]:
        raise TrainingError(f"{paths[0]}: images must be square, found {size[1]}x{size[0]}")
    color = any(a.ndim == 3 for a in arrays)
    images = np.stack([_channels(a, color) for a in arrays])  # (N, H, W, C)
    return (images, *_labels_from_subfolders(folder, paths))


def _channels(array: np.ndarray, color: bool) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    return np.repeat(array, 3, axis=2) if color and array.shape[2] == 1 else array


def _labels_from_subfolders(folder: Path, paths: list[Path]) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """Labels 0..K-1 by the sorted subfolder names, and those names; (None, None) for another layout."""
    parents = [p.relative_to(folder).parts for p in paths]
    if any(len(parts) != 2 for parts in parents):
        return None, None
    classes = sorted({parts[0] for parts in parents})
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[parts[0]] for parts in parents], dtype=np.int64), tuple(classes)
