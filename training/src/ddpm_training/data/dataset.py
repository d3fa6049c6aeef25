"""One decoded dataset: a single uint8 (N, H, W, C) array, optional labels, and where it came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True, eq=False)
class ImageData:
    images: np.ndarray  # (N, H, W, C) uint8, C-contiguous
    labels: np.ndarray | None  # (N,) int64 class labels, or None when the source has none
    source: str  # the path the user gave, for messages
    class_names: tuple[str, ...] | None = None  # names of labels 0..K-1 when the source has them (folder names)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the pixel data and its shape: the same images give the same value, whatever the file format."""
        digest = hashlib.sha256(repr(tuple(self.images.shape)).encode())
        digest.update(np.ascontiguousarray(self.images).data)
        return digest.hexdigest()

    def limited(self, limit: int | None) -> ImageData:
        if limit is None or limit >= self.num_images:
            return self
        labels = None if self.labels is None else self.labels[:limit]
        return ImageData(np.ascontiguousarray(self.images[:limit]), labels, self.source, self.class_names)
