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


CLASS_NAMES = ("disc", "ring", "Ankle boot")  # the tiny conditional model's classes


def make_checkpoint(
    path, preset_name: str, size: int, steps: int, conditional: bool = False, schedule: str = "linear", **train
) -> None:
    """A real checkpoint from the Trainer: random weights (steps=0) or trained a few steps; with
    ``conditional``, a class-conditional model of CLASS_NAMES (labels i mod 3); ``schedule``: its kind.
    ``train``: other TrainConfig settings."""
    from ddpm_runtime.schedule import ScheduleConfig
    from ddpm_training.data import ImageData
    from ddpm_training.data.classes import ClassConditioning
    from ddpm_training.model.config import preset
    from ddpm_training.train.checkpoint import save_checkpoint
    from ddpm_training.train.config import TrainConfig
    from ddpm_training.train.data_objective import data_trainer

    images = make_images(32, size)[..., None]
    labels = (np.arange(32) % len(CLASS_NAMES)).astype(np.int64) if conditional else None
    data = ImageData(images, labels, "generated")
    classes = ClassConditioning(CLASS_NAMES) if conditional else None
    config = preset(preset_name).with_image(1, size).with_classes(len(CLASS_NAMES) if conditional else 0)
    train = TrainConfig(**{"batch_size": 8, "lr": 1e-3, "ema_decay": 0.9, **train})
    trainer = data_trainer(config, ScheduleConfig(kind=schedule), train, data, classes=classes)
    for _ in range(steps):
        trainer.train_step()
    save_checkpoint(path, trainer.state_dict())
