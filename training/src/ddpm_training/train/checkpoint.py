"""Checkpoints: plain dicts of tensors and builtins, written atomically, read with weights_only=True.

Never a pickled module (the seed's ``torch.save(model)``): a checkpoint from anyone can be opened
without running their code, and loads into the model class of any later version of this package.

Each checkpoint carries the sha256 of its content (``content_digest``: every tensor's dtype, shape and
bytes and every other value, in a fixed order), checked whenever one is read: a flipped bit in a
weight, an Adam moment or an RNG state is found before it spreads into every later checkpoint.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from ddpm_runtime.files import atomic_output, check_free_space
from ddpm_runtime.schedule import ScheduleConfig

from ..digest import DIGEST_KEY, content_digest
from ..errors import TrainingError
from ..model.config import UNetConfig

CHECKPOINT_NAME = "checkpoint.pt"  # its name in a run folder
FORMAT = "ddpm-onnx-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("model_config", "schedule", "model", "ema", "step")
KEPT_NAME = re.compile(r"checkpoint-(\d+)\.pt")  # the earlier checkpoints a run keeps (--keep-last)


def kept_name(step: int) -> str:
    return f"checkpoint-{step:07d}.pt"


def kept_checkpoints(folder: str | Path) -> list[Path]:
    """The earlier checkpoints a run folder keeps, newest first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("checkpoint-*.pt") if (m := KEPT_NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Write ``checkpoint`` to ``path``: temporary file in the same folder, fsync, os.replace."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **checkpoint}
    payload[DIGEST_KEY] = content_digest(payload)
    buffer = io.BytesIO()  # serialise fully first: a failure here leaves no file at all
    torch.save(payload, buffer)
    check_free_space(path, buffer.getbuffer().nbytes)
    with atomic_output(path) as handle:
        handle.write(buffer.getbuffer())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        raise TrainingError(f"{path}: is a folder; give the checkpoint file (for example {path / CHECKPOINT_NAME})")
    if not path.is_file():
        raise TrainingError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # torch's own advice ("if you trust the source...") is not ours to print
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not a refused object: bytes that are no checkpoint at all
            raise TrainingError(f"{path}: not a readable checkpoint (not a PyTorch file)") from None
        raise TrainingError(
            f"{path}: holds pickled Python objects (such as a whole model saved with torch.save(model)); "
            "only plain-data ddpm-onnx checkpoints are read, never unpickled"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise TrainingError(f"{path}: not a readable checkpoint ({reason}){_earlier(path)}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise TrainingError(f"{path}: not a ddpm-onnx checkpoint (no '{FORMAT}' format tag)")
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise TrainingError(
            f"{path}: checkpoint format version {version!r} is not supported (this version reads {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise TrainingError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if DIGEST_KEY in checkpoint and content_digest(checkpoint) != checkpoint[DIGEST_KEY]:
        raise TrainingError(f"{path}: content does not match its digest: damaged{_earlier(path)}")
    return checkpoint


def _earlier(path: Path) -> str:
    """Where the run's previous checkpoint is, for the message about a damaged one."""
    kept = [p for p in kept_checkpoints(path.parent) if p.resolve() != path.resolve()]
    if not kept:
        return ""
    return f"; the previous checkpoint is {kept[0]} (--resume it to continue from there)"


def checkpoint_configs(path: str | Path, checkpoint: dict) -> tuple[UNetConfig, ScheduleConfig]:
    """The model and schedule configs a checkpoint was trained with, validated."""
    try:
        return UNetConfig.from_dict(checkpoint["model_config"]), ScheduleConfig.from_dict(checkpoint["schedule"])
    except TrainingError as exc:
        raise TrainingError(f"{path}: {exc}") from None
    except Exception as exc:  # a UserError from the runtime's schedule validation
        raise TrainingError(f"{path}: bad schedule in checkpoint ({exc})") from None
