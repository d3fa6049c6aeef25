"""The pure maths of distillation: the student's and teacher's call times, and what the student learns.

A student (the teacher's U-Net, started from its EMA weights) learns from the points where the
teacher's few-call ODE trajectory (DPM-Solver++(2M), karras spacing, ``teacher_calls`` calls, x_0
unclipped until the end) passes the student's call times t_0 = T-1 > t_1 > ... (every
``teacher_calls / calls``-th teacher call). The target at each point (``DistillConfig.target``):

- ``end``: the trajectory's end, the teacher's image x_0*, as the student's x_0 estimate,

      loss = mean over the K x calls points of || x0_student(x_{t_i}, t_i) - x0* ||^2

  the consistency function of the teacher's ODE (Song et al. 2023) learnt by regression on the
  teacher's solutions (Luhman and Luhman 2021 did it at t = T only); sampled with the consistency
  sampler, in any divisor of ``calls``.
- ``segment`` (one round of progressive distillation, Salimans and Ho 2022, eq. 8): the x_0 whose
  deterministic DDIM step from t_i lands on the teacher's state at t_{i+1} (``segment_targets``),

      x0_target = (x*_{t_{i+1}} - (sigma'/sigma) x_{t_i}) / (alpha' - (sigma'/sigma) alpha)

  with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar) at t_i, primed at t_{i+1}; sampled with
  DDIM (eta 0, x_0 unclipped) at exactly these times.
- ``multistep``: the student samples with DPM-Solver++(2M), x_0 unclipped, landing on t = 0 after its
  last call, at ``calls`` times fitted on the teacher (``refined_times`` gives the teacher's finer
  trajectory through them). Each 2M step is linear in the student's x_0 estimates,
  x_next = A x + B D_i + C D_{i-1} (``step_coefficients``, read off the runtime's own step), so the
  student's x_0 error at point i, in x_0 units, is

      e_i = D_i + (C / B) D_{i-1} - (x*_next - A x) / B,   loss = mean of e_i^2

  with D_{i-1} its own estimate at the teacher's previous state (gradients through both).

Every target's loss is, per point, the mean square of its x_0 error (``point_loss``), or pseudo-Huber
of its RMS (Song and Dhariwal 2023, section 3.3).
"""

from __future__ import annotations

import numpy as np
import torch

from ddpm_runtime.samplers.dpm_solver import dpm_solver_2m_step
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.timesteps import SIGMA_MAX, sampling_timesteps, times_of_lambdas

from ..errors import TrainingError
from .config import TEACHER_SPACING, DistillConfig

# pseudo-Huber's c on the per-point RMS error: Song and Dhariwal 2023's 0.00054 sqrt(d) on the error's
# norm, divided by sqrt(d) (d = the pixels of one image)
PSEUDO_HUBER_C = 0.00054


def teacher_times(schedule: NoiseSchedule, config: DistillConfig) -> np.ndarray:
    return sampling_timesteps(schedule, config.teacher_calls, TEACHER_SPACING)


def student_times(schedule: NoiseSchedule, config: DistillConfig, calls: int | None = None) -> np.ndarray:
    """The student's call times for ``calls`` (a divisor of config.calls; default config.calls): every
    (teacher_calls / calls)-th teacher call time, from T-1."""
    calls = calls or config.calls
    return teacher_times(schedule, config)[:: config.teacher_calls // calls]


def refined_times(schedule: NoiseSchedule, student: np.ndarray, per_segment: int) -> np.ndarray:
    """The teacher's call times for a multistep student: each student time, then ``per_segment - 1`` more
    evenly in lambda up to the next one (the last segment up to t = 0, where both land), the spread
    starting at sigma = SIGMA_MAX at most, as the spacings' do."""
    student = np.asarray(student, dtype=np.float64)
    if not np.all(np.diff(student) < 0) or student[-1] <= 0:
        raise TrainingError(f"student times must descend and stay above 0, got {student.tolist()}")
    lambdas = np.asarray(schedule.log_snr(np.append(student, 0.0)), dtype=np.float64)
    fractions = np.arange(1, per_segment) / per_segment
    times = []
    for i, t in enumerate(student):
        start = max(lambdas[i], -np.log(SIGMA_MAX))
        times += [t, *times_of_lambdas(schedule, start + (lambdas[i + 1] - start) * fractions)]
    return np.asarray(times, dtype=np.float64)


def step_coefficients(alpha_bars: np.ndarray, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, C) per student call of the runtime's 2M steps between the ``alpha_bars`` of its call times,
    landing on ``end``: x_next = A x + B D_i + C D_{i-1} (C = 0 for the first, first-order step). Read off
    ``dpm_solver_2m_step`` itself, which is linear in its three inputs."""
    targets = np.append(alpha_bars[1:], end)
    one, zero = np.ones(1), np.zeros(1)
    coefficients, h_prev = [], None
    for i, (ab_s, ab_t) in enumerate(zip(alpha_bars, targets, strict=True)):
        prev = None if i == 0 else zero
        a, h = dpm_solver_2m_step(one, zero, prev, float(ab_s), float(ab_t), h_prev)
        b, _ = dpm_solver_2m_step(zero, one, prev, float(ab_s), float(ab_t), h_prev)
        c = 0.0 if i == 0 else dpm_solver_2m_step(zero, zero, one, float(ab_s), float(ab_t), h_prev)[0][0]
        coefficients.append((a[0], b[0], c))
        h_prev = h
    return tuple(np.asarray(column, dtype=np.float64) for column in zip(*coefficients, strict=True))


def segment_targets(x: np.ndarray, nxt: np.ndarray, alpha_bars: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The x_0 whose DDIM step (eta 0) from x at each student time lands on ``nxt`` at the next one.

    x, nxt: (count, calls, C, H, W); alpha_bars: (alpha_bar at the calls' times, at the next times, 1 after
    the last). Solves nxt = alpha' x0 + sigma' (x - alpha x0) / sigma for x0."""
    ab, ab_next = (np.asarray(a, dtype=np.float64).reshape(1, -1, 1, 1, 1) for a in alpha_bars)
    ratio = np.sqrt(1.0 - ab_next) / np.sqrt(1.0 - ab)  # sigma' / sigma
    return (nxt - ratio * x) / (np.sqrt(ab_next) - ratio * np.sqrt(ab))


def point_loss(error: torch.Tensor, kind: str) -> torch.Tensor:
    """Per point (the first axis) of the x_0 ``error``: its mean square ("mse"), or pseudo-Huber of its
    RMS e, sqrt(e^2 + c^2) - c ("pseudo-huber")."""
    square = error.flatten(1).pow(2).mean(dim=1)
    if kind == "pseudo-huber":
        return torch.sqrt(square + PSEUDO_HUBER_C**2) - PSEUDO_HUBER_C
    return square
