"""Pure array conversions for images: uint8 pixels <-> the model's range [-1, 1], and tiling into a grid.

The scaling is the seed's ``2 * ToTensor()(img) - 1``: pixel 0 -> -1, pixel 255 -> 1. Training, the
evaluation classifier and sampling all use these two functions.
"""

from __future__ import annotations

import math

import numpy as np

from .arrays import as_float64

VALUE_RANGE = (-1.0, 1.0)  # x_0 in the model's space: what pixel 0 and pixel 255 become


def to_model_range(images_uint8):
    """uint8 0..255 -> floats in [-1, 1]. Pure arithmetic, so NumPy arrays and torch tensors both work."""
    return images_uint8 / 127.5 - 1.0


def to_uint8_nhwc(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8, clipped, rounded to nearest (half to even).
    Written in ``as_float64``, ufuncs and array methods only, so the generator writes this very function
    into its graph."""
    x = as_float64(x)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {x.shape}")
    scaled = np.nan_to_num(np.clip((x + 1.0) * 127.5, 0.0, 255.0), nan=0.0)  # a diverged model's NaN: black
    return np.rint(scaled).astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(images: np.ndarray, ncols: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (rows*H', cols*W', C) uint8 image."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, H, W, C) array, got shape {images.shape}")
    n, h, w, c = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    cell_h, cell_w = h + padding, w + padding
    grid = np.full((nrows * cell_h + padding, ncols * cell_w + padding, c), pad_value, dtype=images.dtype)
    for i in range(n):
        row, col = divmod(i, ncols)
        top, left = padding + row * cell_h, padding + col * cell_w
        grid[top : top + h, left : left + w] = images[i]
    return grid
