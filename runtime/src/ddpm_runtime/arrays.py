"""The one conversion the sampling maths makes of its array states, shared by the samplers and images.py."""

from __future__ import annotations

import numpy as np


def as_float64(x) -> np.ndarray:
    """``x`` as a float64 array; an array stand-in converts itself (its ``as_float64`` method): ddpm-export's
    generator runs the samplers on arrays that record into an ONNX graph what is done to them."""
    convert = getattr(x, "as_float64", None)
    return convert() if convert is not None else np.asarray(x, dtype=np.float64)
