"""Train the feature classifier once per labelled dataset (fixed seed) and cache it by fingerprint.

The cache is a folder of plain state-dict files, loaded with weights_only=True:
$DDPM_ONNX_CACHE, else $XDG_CACHE_HOME/ddpm-onnx, else ~/.cache/ddpm-onnx.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddpm_runtime.images import to_model_range

from ..data import ImageData
from ..digest import DIGEST_KEY, content_digest
from ..errors import TrainingError
from .lenet import LeNet, LeNetConfig

CACHE_FORMAT = "ddpm-onnx-lenet"
CACHE_VERSION = 1
HELD_OUT = 0.1  # share of the labelled images kept out of training to measure accuracy


@dataclass
class FeatureClassifier:
    model: LeNet
    accuracy: float  # on the held-out share of the labelled data
    num_classes: int
    cache_path: Path
    from_cache: bool


def default_cache_dir() -> Path:
    if os.environ.get("DDPM_ONNX_CACHE"):
        return Path(os.environ["DDPM_ONNX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ddpm-onnx"


def to_input(images_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float in [-1, 1], the model's data range."""
    return to_model_range(torch.from_numpy(np.array(images_uint8, copy=True)).permute(0, 3, 1, 2).float())


def _key(data: ImageData, seed: int, epochs: int) -> str:
    digest = hashlib.sha256(f"{data.fingerprint}|{seed}|{epochs}|v{CACHE_VERSION}".encode())
    digest.update(np.ascontiguousarray(data.labels).astype(np.int64).tobytes())
    return digest.hexdigest()[:24]


def feature_classifier(
    data: ImageData,
    cache_dir: Path | None = None,
    seed: int = 0,
    epochs: int = 3,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FeatureClassifier:
    if data.labels is None:
        raise TrainingError(
            f"{data.source}: the real data has no labels; ddpm eval needs labelled data to train its feature "
            "classifier (IDX with a labels file, a CSV with a label column, an .npz with y_train, or class subfolders)"
        )
    num_classes = int(data.labels.max()) + 1
    if num_classes < 2:
        raise TrainingError(f"{data.source}: labels name only one class; a classifier needs at least two")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"lenet-{_key(data, seed, epochs)}.pt"
    config = LeNetConfig(data.channels, num_classes)
    cached = _load(path, config)
    if cached is not None:
        return cached
    model, accuracy = _train(data, config, seed, epochs, on_epoch)
    _save(path, model, accuracy, data)
    return FeatureClassifier(model.eval(), accuracy, num_classes, path, from_cache=False)


def _train(data, config, seed, epochs, on_epoch) -> tuple[LeNet, float]:
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(data.num_images, generator=generator)
    held = max(1, int(data.num_images * HELD_OUT))
    test_idx, train_idx = order[:held], order[held:]
    x = to_input(data.images)
    y = torch.from_numpy(data.labels.astype(np.int64))
    torch.manual_seed(seed)
    model = LeNet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for start in range(0, len(perm), 256):
            batch = perm[start : start + 256]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        accuracy = _accuracy(model, x[test_idx], y[test_idx])
        if on_epoch is not None:
            on_epoch(epoch + 1, accuracy)
    return model.eval(), accuracy


@torch.no_grad()
def _accuracy(model: LeNet, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)])
    return float((predictions == y).float().mean())


def _save(path: Path, model: LeNet, accuracy: float, data: ImageData) -> None:
    from ddpm_runtime.files import atomic_output, ensure_writable_dir

    ensure_writable_dir(path.parent)
    buffer = io.BytesIO()
    saved = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "accuracy": accuracy,
        "data_fingerprint": data.fingerprint,
    }
    torch.save({**saved, DIGEST_KEY: content_digest(saved)}, buffer)
    with atomic_output(path) as handle:
        handle.write(buffer.getbuffer())


def _load(path: Path, config: LeNetConfig) -> FeatureClassifier | None:
    """A cached classifier, or None if absent or unusable (it is then trained again and replaced)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != CACHE_FORMAT or saved.get("version") != CACHE_VERSION:
            return None
        if DIGEST_KEY in saved and content_digest(saved) != saved[DIGEST_KEY]:
            return None  # damaged: trained again and replaced
        model = LeNet(config)
        model.load_state_dict(saved["state_dict"])
    except Exception:  # a damaged cache file is not the user's error: retrain
        return None
    return FeatureClassifier(model.eval(), float(saved["accuracy"]), config.num_classes, path, from_cache=True)


@torch.no_grad()
def features_and_predictions(
    model: LeNet, images_uint8: np.ndarray, batch: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    feats, preds = [], []
    for start in range(0, len(images_uint8), batch):
        f = model.features(to_input(images_uint8[start : start + batch]))
        feats.append(f.numpy().astype(np.float64))
        preds.append(model.head(f).argmax(1).numpy())
    return np.concatenate(feats), np.concatenate(preds)
