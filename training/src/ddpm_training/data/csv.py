"""The Kaggle "digit-recognizer" CSV the seed used: ``label,pixel0..pixel783`` or pixels only.

The seed's generated-data CSV (``pixel0..pixel783``, no label) reads the same way. A header row is
optional; values must be integers 0..255. The whole file is parsed by NumPy's C reader at once.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import TrainingError


def _first_line(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return handle.readline().strip()
    except OSError as exc:
        raise TrainingError(f"{path}: cannot read CSV file ({exc.strerror or exc})") from None


def load_csv(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    first = _first_line(path)
    if not first:
        raise TrainingError(f"{path}: empty CSV file")
    columns = [c.strip().strip('"') for c in first.split(",")]
    has_header = not _is_number(columns[0])
    if has_header:
        has_label = columns[0].lower() == "label"
        pixel_cols = columns[1:] if has_label else columns
        if not all(c.startswith("pixel") for c in pixel_cols):
            raise TrainingError(f"{path}: header must be 'label,pixel0,...' or 'pixel0,...', found {first[:60]!r}")
    else:
        # No header: a label column exists when the row has one more value than a square image.
        has_label = not _is_square(len(columns)) and _is_square(len(columns) - 1)
    try:
        with warnings.catch_warnings():  # numpy warns "input contained no data" for a header-only file
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=1 if has_header else 0, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        # NumPy says where: "the number of columns changed from 785 to 3 at row 5" / "could not convert ...".
        raise TrainingError(f"{path}: malformed CSV ({_one_line(exc)})") from None
    if table.shape[0] == 0:
        raise TrainingError(f"{path}: CSV file has a header but no rows")
    if not np.isfinite(table).all():
        raise TrainingError(f"{path}: CSV contains NaN or infinite values")
    labels = table[:, 0].astype(np.int64) if has_label else None
    pixels = table[:, 1:] if has_label else table
    side = math.isqrt(pixels.shape[1])
    if side * side != pixels.shape[1]:
        raise TrainingError(f"{path}: {pixels.shape[1]} pixel columns do not form a square image")
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, np.round(pixels)):
        raise TrainingError(f"{path}: pixel values must be integers in 0..255")
    return pixels.astype(np.uint8).reshape(-1, side, side, 1), labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
