"""IDX files (the MNIST / Fashion-MNIST layout), raw or gzip-compressed.

Layout (LeCun's MNIST page): two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian int32 per dimension, then the data in C order.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from ..errors import TrainingError

_UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TrainingError(f"{path}: cannot read IDX file ({exc})") from None


def read_idx(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise TrainingError(f"{path}: not an IDX file (wrong magic number {data[:4].hex() or 'empty'})")
    if data[2] != _UBYTE:
        raise TrainingError(f"{path}: IDX type code 0x{data[2]:02x} is not supported (only 0x08, unsigned byte)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise TrainingError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header < expected:
        raise TrainingError(
            f"{path}: truncated IDX file: header says {shape} ({expected} bytes), found {len(data) - header}"
        )
    if len(data) - header > expected:
        raise TrainingError(
            f"{path}: IDX file has {len(data) - header - expected} bytes after the data its header describes"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


def labels_path_for(images_path: Path) -> Path | None:
    """train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz], if that file exists."""
    name = re.sub(r"images-idx3", "labels-idx1", images_path.name)
    if name == images_path.name:
        return None
    for candidate in (name, name.removesuffix(".gz"), name + ".gz"):
        if (images_path.parent / candidate).is_file():
            return images_path.parent / candidate
    return None


def find_idx_images(folder: Path, split: str = "train") -> Path | None:
    """The images of one split of an MNIST-layout folder ("train": train-images-idx3-ubyte, "test":
    t10k-images-idx3-ubyte; raw or .gz), if any."""
    prefix = {"train": "train", "test": "t10k"}[split]
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images.idx3-ubyte"):
        if (folder / name).is_file():
            return folder / name
    return None


def test_images_beside(train_images: Path) -> Path | None:
    """train-images-idx3-ubyte[.gz] -> the t10k-images file of the same folder, if it exists."""
    if not train_images.name.startswith("train-images"):
        return None
    candidate = train_images.parent / ("t10k" + train_images.name.removeprefix("train"))
    return candidate if candidate.is_file() else find_idx_images(train_images.parent, "test")


def load_idx(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    images = read_idx(path)
    if images.ndim != 3:
        raise TrainingError(f"{path}: IDX images must have 3 dimensions (N, H, W), found {images.ndim}")
    labels = None
    labels_path = labels_path_for(path)
    if labels_path is not None:
        labels = read_idx(labels_path)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise TrainingError(f"{labels_path}: expected {images.shape[0]} labels, found shape {labels.shape}")
        labels = labels.astype(np.int64)
    return images[..., None], labels  # (N, H, W, 1)
