"""Small generated data files for the tests: nothing is downloaded, nothing large is committed."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for seed_reference


def make_images(n: int = 64, size: int = 12, seed: int = 0) -> np.ndarray:
    """(n, size, size) uint8 images: bright discs of varying centre and radius on a dark ground."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        radius = rng.uniform(size * 0.15, size * 0.35)
        images[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = rng.integers(150, 256)
    return images


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    return make_images()


@pytest.fixture(scope="session")
def labels(images) -> np.ndarray:
    return (np.arange(len(images)) % 10).astype(np.uint8)


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory, images, labels) -> Path:
    """An MNIST-layout folder: gzipped train images and labels."""
    folder = tmp_path_factory.mktemp("idx")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return folder
