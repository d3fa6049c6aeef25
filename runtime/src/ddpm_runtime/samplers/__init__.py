"""Samplers: pure functions of (eps_model, x_T, schedule, timesteps, ..., rng, callback).

``eps_model(x, t)`` takes float32 arrays ``x`` (B, C, H, W) and ``t`` (B,) and returns the predicted
noise with x's shape. Any callable works: an ONNX Runtime session, or a torch module in tests.
"""

from .ddim import ddim_step, sample_ddim

__all__ = ["ddim_step", "sample_ddim"]
