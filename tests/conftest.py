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


def make_checkpoint(path, preset_name: str, size: int, steps: int) -> None:
    """A real checkpoint from the Trainer: random weights (steps=0) or trained a few steps."""
    from ddpm_runtime.schedule import ScheduleConfig
    from ddpm_training.checkpoint import save_checkpoint
    from ddpm_training.config import preset
    from ddpm_training.data import ImageData
    from ddpm_training.train_config import TrainConfig
    from ddpm_training.trainer import Trainer

    images = make_images(32, size)[..., None]
    data = ImageData(images, None, "generated")
    config = preset(preset_name).with_image(1, size)
    trainer = Trainer(config, ScheduleConfig(), TrainConfig(batch_size=8, lr=1e-3, ema_decay=0.9), data)
    for _ in range(steps):
        trainer.train_step()
    save_checkpoint(path, trainer.state_dict())


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    make_checkpoint(path, "tiny", 12, steps=3)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_trained):
    """The tiny checkpoint exported by the export package (opset 23, parity gate passed)."""
    from ddpm_export.onnx_export import export_onnx
    from ddpm_export.source import load_source

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = export_onnx(load_source(tiny_trained), out)
    assert result.report.passed
    return out
