"""Readers for MNIST-format data. Each decodes its source once into one uint8 (N, H, W, C) array.

``load_images(path)`` picks the reader from the path:
- a folder holding ``train-images-idx3-ubyte[.gz]`` (the MNIST layout): its training split;
- ``*-idx3-ubyte`` / ``*.idx3-ubyte`` / ``*.gz``: an IDX file (labels from the sibling ``labels-idx1`` file);
- ``*.csv``: the Kaggle digit-recognizer CSV; ``*.npy`` / ``*.npz``: NumPy arrays;
- any other folder: PNG / JPEG images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TrainingError
from .arrays import load_array_file
from .csv import load_csv
from .dataset import ImageData
from .folder import load_folder
from .idx import find_idx_images, load_idx

__all__ = ["ImageData", "load_images"]


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
