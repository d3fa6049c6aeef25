"""The sha256 of a saved dict's content (a checkpoint, a cached classifier), to tell a damaged file
from a good one when it is read back."""

from __future__ import annotations

import hashlib

import torch

DIGEST_KEY = "sha256"  # the key a digest is stored under, beside what it covers; absent in older files


def content_digest(checkpoint: dict) -> str:
    """sha256 over everything in ``checkpoint`` but the digest itself: tensors as dtype, shape and raw
    bytes, containers key by key in sorted order, other values by their repr."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in checkpoint.items() if k != DIGEST_KEY})
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    else:
        text = repr(value)
        digest.update(f"V{len(text)}:{text}".encode())
