"""NumPy files: ``.npy`` (one image array) and ``.npz`` (keras' ``mnist.npz``, ``samples.npz`` ...).

Accepted layouts: (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}. Accepted values:
integers 0..255, or floats in [0, 1]. Anything else is an error, never silently rescaled.
Files are loaded with ``allow_pickle=False``: an object array in a user's file is refused.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import TrainingError

# Keys tried in order for the images and labels of an .npz archive.
_IMAGE_KEYS = ("x_train", "images", "arr_0", "x")
_LABEL_KEYS = ("y_train", "labels", "arr_1", "y")
TEST_KEYS = ("x_test", "y_test")  # keras' mnist.npz and fashion_mnist layouts: the test split


def has_test_split(path: Path) -> bool:
    """Whether an .npz archive holds a labelled test split (TEST_KEYS)."""
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return isinstance(loaded, np.lib.npyio.NpzFile) and all(key in loaded.files for key in TEST_KEYS)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError):
        return False


def load_array_file(path: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    """(images, labels or None, class names or None: ``class_names``, as ``ddpm-run sample --class`` writes).
    ``split="test"``: the archive's TEST_KEYS arrays instead."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TrainingError(f"{path}: cannot read NumPy file ({' '.join(str(exc).split())})") from None
    labels = None
    names = class_names = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            image_keys, label_keys = (TEST_KEYS[:1], TEST_KEYS[1:]) if split == "test" else (_IMAGE_KEYS, _LABEL_KEYS)
            image_key = next((k for k in image_keys if k in keys), keys[0] if len(keys) == 1 else None)
            if image_key is None:
                raise TrainingError(f"{path}: no image array found (looked for {', '.join(image_keys)}; has {keys})")
            try:
                images = loaded[image_key]
                label_key = next((k for k in label_keys if k in keys), None)
                labels = loaded[label_key] if label_key else None
                names = loaded["class_names"] if "class_names" in keys else None
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                # A damaged archive fails only here, when a member is read (zipfile checks its CRC then).
                raise TrainingError(f"{path}: cannot read array {image_key!r} ({' '.join(str(exc).split())})") from None
    else:
        images = loaded
    if names is not None and names.ndim == 1 and names.dtype.kind == "U":
        class_names = tuple(str(name) for name in names)
    images = _to_uint8_nhwc(path, images)
    if labels is not None:
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            labels = None  # not class labels in the sense we use; training never needs them
        else:
            labels = labels.astype(np.int64)
    return images, labels, class_names


def _to_uint8_nhwc(path: Path, images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise TrainingError(f"{path}: expected images of shape (N, H, W[, C]), found {images.shape}")
    if images.shape[-1] not in (1, 3):
        if images.shape[1] in (1, 3):
            images = images.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        else:
            raise TrainingError(f"{path}: cannot tell the channel axis of shape {images.shape} (need 1 or 3 channels)")
    if images.shape[0] == 0:
        raise TrainingError(f"{path}: the array holds no images")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        if images.min() < 0 or images.max() > 255:
            raise TrainingError(f"{path}: integer pixel values must lie in 0..255")
        return np.ascontiguousarray(images.astype(np.uint8))
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise TrainingError(f"{path}: array contains NaN or infinite values")
        if images.min() < 0 or images.max() > 1:
            raise TrainingError(f"{path}: float pixel values must lie in [0, 1] (store 0..255 as uint8)")
        return np.ascontiguousarray(np.rint(images * 255.0).astype(np.uint8))
    raise TrainingError(f"{path}: unsupported array dtype {images.dtype}")
