"""Random numbers for sampling, one numpy Generator per image.

Image i of a run with seed s always gets the numbers of ``default_rng([s, i])``, so the same seed
gives the same images whatever --batch-size and -n are (image 7 of -n 8 is image 7 of -n 100).
"""

from __future__ import annotations

import numpy as np


class PerImageNoise:
    """``standard_normal((B, ...))``: row j drawn from the generator of image ``first + j``."""

    def __init__(self, seed: int, first: int, count: int):
        self.generators = [np.random.default_rng([seed, index]) for index in range(first, first + count)]

    def standard_normal(self, shape: tuple[int, ...]) -> np.ndarray:
        if shape[0] != len(self.generators):
            raise ValueError(f"noise for {shape[0]} rows requested, {len(self.generators)} images in this batch")
        return np.stack([g.standard_normal(shape[1:]) for g in self.generators])
