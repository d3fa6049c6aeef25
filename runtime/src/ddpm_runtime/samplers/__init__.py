"""Samplers: pure functions with one signature (see ``interface.py``), found by name in ``REGISTRY``.

Schedule maths is float64; the state x is float64 and cast to float32 only for the model call.
Adding a sampler: write ``samplers/NAME.py`` with its ``sample_NAME`` function and a ``SPEC``, then
add ``NAME.SPEC`` to the tuple below. The CLI's ``--sampler`` choices, default step counts, help
text and option flags all come from here.
"""

from ..errors import UserError
from . import consistency, ddim, ddpm, dpm_solver, dpm_solver_3m, dpm_solver_sde
from .consistency import consistency_step, sample_consistency
from .ddim import ddim_step, sample_ddim
from .ddpm import ddpm_step, sample_ddpm
from .dpm_solver import dpm_solver_2m_step, sample_dpm_solver_2m
from .dpm_solver_3m import dpm_solver_3m_step, sample_dpm_solver_3m
from .dpm_solver_sde import dpm_solver_2m_sde_step, sample_dpm_solver_2m_sde
from .interface import Callback, EpsModel, SamplerOption, SamplerSpec

REGISTRY: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        ddpm.SPEC,
        ddim.SPEC,
        dpm_solver.SPEC,
        dpm_solver_sde.SPEC,
        dpm_solver_3m.SPEC,
        consistency.SPEC,
    )
}
SAMPLERS = tuple(REGISTRY)


def get_sampler(name: str) -> SamplerSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})") from None


def all_options() -> dict[str, SamplerOption]:
    """Every sampler option by name, once (samplers that share an option share its flag)."""
    return {option.name: option for spec in REGISTRY.values() for option in spec.options}


__all__ = [
    "REGISTRY",
    "SAMPLERS",
    "Callback",
    "EpsModel",
    "SamplerOption",
    "SamplerSpec",
    "all_options",
    "consistency_step",
    "ddim_step",
    "ddpm_step",
    "dpm_solver_2m_sde_step",
    "dpm_solver_2m_step",
    "dpm_solver_3m_step",
    "get_sampler",
    "sample_consistency",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpm_solver_2m",
    "sample_dpm_solver_2m_sde",
    "sample_dpm_solver_3m",
]
