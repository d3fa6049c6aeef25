"""Small generated data and models for the tests: nothing is downloaded, nothing large is committed.

Plain functions (the fixtures in conftest.py wrap them). Only NumPy at import time: the runtime's
tests import this module in an environment without torch.
"""

from __future__ import annotations

import struct

import numpy as np


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
