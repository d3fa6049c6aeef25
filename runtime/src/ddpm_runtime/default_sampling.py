"""Which sampler a model gets when the user names none: the one home of that rule.

The exporter writes its outcome into a model file's metadata ("sampling.default"), the training
previews draw with it, and ``ddpm-run`` reads it back, so all three sample a model the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError
from .samplers import REGISTRY

# For networks trained to predict epsilon: the stochastic solver (docs/benchmarks/samplers.md, "Which
# sampler by default"). Its steps are the sampler's own default_steps.
EPSILON_DEFAULT_SAMPLER = "dpm-solver++-sde"
# For networks trained to predict v: the same stochastic solver, written into the model file so that
# the file says how it samples (docs/benchmarks/samplers.md, "Which sampler by default"; files exported
# before carry the deterministic solver the LeNet's figures had chosen, and keep it).
X0_NETWORK_DEFAULT = {"sampler": "dpm-solver++-sde", "steps": 20}


@dataclass(frozen=True, kw_only=True)
class StudentSampling:
    """How a distilled student samples (``ddpm distill`` decides it and keeps it in the checkpoint)."""

    sampler: str
    calls: int
    options: dict = field(default_factory=dict)  # sampler options it needs (a segment student's x_0 unclipped)
    guided: bool = False  # a class-conditional student, guidance folded in: ddpm-run adds none by default


def default_sampling(network_prediction: str = "epsilon", student: StudentSampling | None = None) -> dict | None:
    """The metadata's "sampling.default" entry for a model: {"sampler", "steps"[, "options"][,
    "guidance_scale"]}, or None where ``SamplingSettings``' sampler at its default steps is the default.

    ``network_prediction``: what the network predicts ("epsilon", "v", "edm"; the export outputs eps
    either way); ``student``: a distilled student's own sampling, which wins over the rest."""
    if student is not None:
        default: dict = {"sampler": student.sampler, "steps": student.calls}
        if student.options:
            default["options"] = dict(student.options)
        if student.guided:
            default["guidance_scale"] = 0.0
        return default
    if network_prediction == "v":
        return dict(X0_NETWORK_DEFAULT)
    return None  # epsilon; edm is not measured yet, so it keeps the general default


def resolve_default(default: dict | None, sampler: str | None, steps: int | None, source: str = "model"):
    """(sampler, steps, options) for a request that may leave the sampler and steps out: the model's
    ``default`` (from ``default_sampling``) where it has one, with the sampler options it samples with,
    else ``EPSILON_DEFAULT_SAMPLER`` and no options. Naming the model's own sampler keeps its options too
    (a student's times need them; so does the page)."""
    if default is None or (sampler is not None and sampler != default["sampler"]):
        return sampler or EPSILON_DEFAULT_SAMPLER, steps, {}
    if default["sampler"] not in REGISTRY:
        raise UserError(
            f"{source}: samples with {default['sampler']!r}, which this ddpm-run does not have; pass --sampler"
        )
    return default["sampler"], default["steps"] if steps is None else steps, dict(default.get("options", {}))
