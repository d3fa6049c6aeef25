"""Samplers: pure functions of (eps_model, x_T, schedule, timesteps, ..., rng, callback).

``eps_model(x, t)`` takes float32 arrays ``x`` (B, C, H, W) and ``t`` (B,) and returns the predicted
noise with x's shape. Any callable works: an ONNX Runtime session, or a torch module in tests.
Schedule maths is float64; the state x is float64 and cast to float32 only for the model call.
"""

from .ddim import ddim_step, sample_ddim
from .ddpm import ddpm_step, sample_ddpm
from .dpm_solver import dpm_solver_2m_step, sample_dpm_solver_2m

SAMPLERS = ("ddpm", "ddim", "dpm-solver++")

__all__ = [
    "SAMPLERS",
    "ddim_step",
    "ddpm_step",
    "dpm_solver_2m_step",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpm_solver_2m",
]
