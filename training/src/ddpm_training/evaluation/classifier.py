"""Train a feature classifier once per labelled dataset, network and seed, and cache it by fingerprint.

Two networks: "cnn" (cnn.py, the headline: batch norm, augmentation, more accurate) and "lenet"
(lenet.py, kept so that figures stay comparable with earlier tables).

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
from .cnn import CNNConfig, FeatureCNN
from .lenet import LeNet, LeNetConfig

CACHE_FORMAT = "ddpm-onnx-lenet"  # the LeNet's cache file format and version (the CNN's: its own)
CACHE_VERSION = 1
CNN_CACHE_FORMAT, CNN_CACHE_VERSION = "ddpm-onnx-cnn", 1
HELD_OUT = 0.1  # share of the labelled images kept out of training to measure accuracy
NETWORKS = ("cnn", "lenet")  # the headline first
DEFAULT_EPOCHS = {"lenet": 3, "cnn": 10}
CNN_BATCH, CNN_LR, CNN_WEIGHT_DECAY = 128, 3e-3, 5e-4  # AdamW with a one-cycle rate (Smith 2018)
SHIFT = 2  # augmentation: the batch moved by up to this many pixels each way, then flipped per image


@dataclass
class FeatureClassifier:
    model: LeNet | FeatureCNN
    accuracy: float  # on the held-out share of the labelled data
    num_classes: int
    cache_path: Path
    from_cache: bool
    seed: int = 0  # its training seed, which also chose its held-out images (held_out_split)


def default_cache_dir() -> Path:
    if os.environ.get("DDPM_ONNX_CACHE"):
        return Path(os.environ["DDPM_ONNX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ddpm-onnx"


def to_input(images_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float in [-1, 1], the model's data range."""
    return to_model_range(torch.from_numpy(np.array(images_uint8, copy=True)).permute(0, 3, 1, 2).float())


def held_out_split(num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices of the labelled data the classifiers of ``seed`` were trained on:
    HELD_OUT of the images, never trained on, measure their accuracy."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed)).numpy()
    held = max(1, int(num_images * HELD_OUT))
    return order[:held], order[held:]


def _key(data: ImageData, seed: int, epochs: int, network: str = "lenet") -> str:
    tag = f"v{CACHE_VERSION}" if network == "lenet" else f"v{CNN_CACHE_VERSION}|{network}"
    digest = hashlib.sha256(f"{data.fingerprint}|{seed}|{epochs}|{tag}".encode())
    digest.update(np.ascontiguousarray(data.labels).astype(np.int64).tobytes())
    return digest.hexdigest()[:24]


def feature_classifier(
    data: ImageData,
    cache_dir: Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    network: str = "lenet",
) -> FeatureClassifier:
    """The ``network`` ("cnn" or "lenet") trained on ``data`` with ``seed`` for ``epochs`` (default:
    DEFAULT_EPOCHS), from the cache when it holds it."""
    if network not in NETWORKS:
        raise TrainingError(f"unknown feature network {network!r} (choose from {', '.join(NETWORKS)})")
    epochs = DEFAULT_EPOCHS[network] if epochs is None else epochs
    if data.labels is None:
        raise TrainingError(
            f"{data.source}: the real data has no labels; ddpm eval needs labelled data to train its feature "
            "classifier (IDX with a labels file, a CSV with a label column, an .npz with y_train, or class subfolders)"
        )
    num_classes = int(data.labels.max()) + 1
    if num_classes < 2:
        raise TrainingError(f"{data.source}: labels name only one class; a classifier needs at least two")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"{network}-{_key(data, seed, epochs, network)}.pt"
    if network == "lenet":
        config = LeNetConfig(data.channels, num_classes)
        cached = _load(path, config, seed)
    else:
        config = CNNConfig(data.channels, num_classes)
        cached = _load(path, config, seed, FeatureCNN, CNN_CACHE_FORMAT, CNN_CACHE_VERSION)
    if cached is not None:
        return cached
    train = _train if network == "lenet" else _train_cnn
    model, accuracy = train(data, config, seed, epochs, on_epoch)
    if network == "lenet":
        _save(path, model, accuracy, data)
    else:
        _save(path, model, accuracy, data, CNN_CACHE_FORMAT, CNN_CACHE_VERSION)
    return FeatureClassifier(model.eval(), accuracy, num_classes, path, from_cache=False, seed=seed)


def _train(data, config, seed, epochs, on_epoch) -> tuple[LeNet, float]:
    generator = torch.Generator().manual_seed(seed)
    test_idx, train_idx = (torch.from_numpy(part) for part in held_out_split(data.num_images, seed))
    torch.randperm(data.num_images, generator=generator)  # past the split's draw: the batch order stays as it was
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


def _train_cnn(data, config, seed, epochs, on_epoch) -> tuple[FeatureCNN, float]:
    """The CNN with AdamW and a one-cycle rate over ``epochs``, the batch shifted (background fill) and
    its images flipped at random; the same held-out split as the LeNet's for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    test_idx, train_idx = (torch.from_numpy(part) for part in held_out_split(data.num_images, seed))
    torch.randperm(data.num_images, generator=generator)  # past the split's draw: the batch order stays as it was
    x = to_input(data.images).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(data.labels.astype(np.int64))
    torch.manual_seed(seed)
    model = FeatureCNN(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=CNN_LR, weight_decay=CNN_WEIGHT_DECAY)
    steps = epochs * -(-len(train_idx) // CNN_BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, CNN_LR, total_steps=steps)
    accuracy = 0.0
    for epoch in range(epochs):
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for start in range(0, len(perm), CNN_BATCH):
            batch = perm[start : start + CNN_BATCH]
            loss = F.cross_entropy(model(_augment(x[batch], generator)), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy = _accuracy(model, x[test_idx], y[test_idx])
        if on_epoch is not None:
            on_epoch(epoch + 1, accuracy)
    return model.eval(), accuracy


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The batch moved by up to SHIFT pixels (the background, -1, fills in), each image flipped left to
    right with probability 1/2."""
    height, width = batch.shape[2:]
    padded = F.pad(batch, (SHIFT, SHIFT, SHIFT, SHIFT), value=-1.0)
    top, left = torch.randint(0, 2 * SHIFT + 1, (2,), generator=generator).tolist()
    moved = padded[:, :, top : top + height, left : left + width]
    flip = torch.rand(len(batch), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], moved.flip(3), moved).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def _accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)])
    return float((predictions == y).float().mean())


def _save(
    path: Path, model, accuracy: float, data: ImageData, format: str = CACHE_FORMAT, version: int = CACHE_VERSION
) -> None:
    from ddpm_runtime.files import atomic_output, ensure_writable_dir

    ensure_writable_dir(path.parent)
    buffer = io.BytesIO()
    saved = {
        "format": format,
        "version": version,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "accuracy": accuracy,
        "data_fingerprint": data.fingerprint,
    }
    torch.save({**saved, DIGEST_KEY: content_digest(saved)}, buffer)
    with atomic_output(path) as handle:
        handle.write(buffer.getbuffer())


def _load(
    path: Path, config, seed: int, network=LeNet, format: str = CACHE_FORMAT, version: int = CACHE_VERSION
) -> FeatureClassifier | None:
    """A cached classifier, or None if absent or unusable (it is then trained again and replaced)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != format or saved.get("version") != version:
            return None
        if DIGEST_KEY in saved and content_digest(saved) != saved[DIGEST_KEY]:
            return None  # damaged: trained again and replaced
        model = network(config)
        model.load_state_dict(saved["state_dict"])
    except Exception:  # a damaged cache file is not the user's error: retrain
        return None
    return FeatureClassifier(
        model.eval(), float(saved["accuracy"]), config.num_classes, path, from_cache=True, seed=seed
    )


@torch.no_grad()
def features_and_predictions(model, images_uint8: np.ndarray, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    feats, preds = [], []
    for start in range(0, len(images_uint8), batch):
        f = model.features(to_input(images_uint8[start : start + batch]))
        feats.append(f.numpy().astype(np.float64))
        preds.append(model.head(f).argmax(1).numpy())
    return np.concatenate(feats), np.concatenate(preds)
