"""Readers for MNIST-format data. Each decodes its source once into one uint8 (N, H, W, C) array.

``load_images(path)`` picks the reader from the path:
- a folder holding ``train-images-idx3-ubyte[.gz]`` (the MNIST layout): its training split;
- ``*-idx3-ubyte`` / ``*.idx3-ubyte`` / ``*.gz``: an IDX file (labels from the sibling ``labels-idx1`` file);
- ``*.csv``: the Kaggle digit-recognizer CSV; ``*.npy`` / ``*.npz``: NumPy arrays;
- any other folder: PNG / JPEG images.

``load_test_split(path)`` reads the labelled test split that goes with such a source, where it has
one: an MNIST-layout folder's ``t10k-images-idx3-ubyte[.gz]`` (and labels), the t10k file beside a
``train-images`` IDX file, or an .npz archive's ``x_test`` / ``y_test``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TrainingError
from .arrays import has_test_split, load_array_file
from .csv import load_csv
from .dataset import ImageData
from .folder import load_folder
from .idx import find_idx_images, load_idx, test_images_beside

__all__ = ["ImageData", "load_images", "load_test_split", "test_split_path"]


def load_images(path: str | Path, limit: int | None = None) -> ImageData:
    path = Path(path)
    if limit is not None and limit < 1:
        raise TrainingError(f"--limit must be at least 1, got {limit}")
    if not path.exists():
        raise TrainingError(f"{path}: no such file or directory")
    class_names = None
    if path.is_dir():
        idx_images = find_idx_images(path)
        if idx_images:
            images, labels = load_idx(idx_images)
        else:
            images, labels, class_names = load_folder(path)
    else:
        name = path.name.lower()
        if name.endswith(".csv"):
            images, labels = load_csv(path)
        elif name.endswith((".npy", ".npz")):
            images, labels, class_names = load_array_file(path)
        elif "idx" in name or name.endswith(".gz") or name.endswith("ubyte"):
            images, labels = load_idx(path)
        else:
            raise TrainingError(f"{path}: unknown data format (expected IDX, .csv, .npy, .npz or a folder of images)")
    if images.shape[1] != images.shape[2]:
        raise TrainingError(f"{path}: images must be square, found {images.shape[2]}x{images.shape[1]}")
    return ImageData(np.ascontiguousarray(images), labels, str(path), class_names).limited(limit)


def test_split_path(path: str | Path) -> Path | None:
    """The file holding the test split of the data at ``path`` (see the module's docstring), or None."""
    path = Path(path)
    if path.is_dir():
        return find_idx_images(path, "test") if find_idx_images(path) else None
    name = path.name.lower()
    if name.endswith(".npz"):
        return path if has_test_split(path) else None
    if "idx" in name or name.endswith(".gz") or name.endswith("ubyte"):
        return test_images_beside(path)
    return None


def load_test_split(path: str | Path) -> ImageData | None:
    """The labelled test split of the data at ``path``, or None when it has none (or it has no labels)."""
    found = test_split_path(path)
    if found is None:
        return None
    if found.name.lower().endswith(".npz"):
        images, labels, class_names = load_array_file(found, split="test")
        source = f"{found} (x_test)"
    else:
        (images, labels), class_names, source = load_idx(found), None, str(found)
    if labels is None:
        return None
    return ImageData(np.ascontiguousarray(images), labels, source, class_names)
