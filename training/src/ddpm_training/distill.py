"""`ddpm distill` as a library: a student with the teacher's U-Net that samples in a few model calls.

Method: regression onto the teacher's own ODE solutions. Every step draws K starting noises and runs
the teacher's deterministic few-call solver on them (DPM-Solver++(2M), karras spacing,
``teacher_calls`` calls, x_0 unclipped until the end: its best few-call sampler, BENCHMARKS.md "Four
model calls"), with the runtime's NumPy sampler and no gradients. Where that trajectory passes the
student's call times t_0 = T-1 > t_1 > ... (every ``teacher_calls / calls``-th teacher call), the
student learns one of two targets (``DistillConfig.target``):

- ``end`` (a flow map to the end): the trajectory's end, the teacher's image x_0*, as its x_0 estimate,

      loss = mean over the K x calls points of || x0_student(x_{t_i}, t_i) - x0* ||^2

  the consistency function of the teacher's ODE (Song et al. 2023) learnt by regression on the
  teacher's solutions (Luhman and Luhman 2021 did it at t = T only). The student samples with the
  consistency sampler (``ddpm_runtime.samplers.consistency``): x_0 from t_0, noised afresh to t_1, x_0
  again, and so on; with one call it is x0_student(x_T); it serves 1, 2, ... calls (the divisors).
- ``segment`` (one segment at a time, as one round of progressive distillation, Salimans and Ho 2022,
  eq. 8): the x_0 estimate whose deterministic DDIM step from t_i lands on the teacher's state at
  t_{i+1} (its image after the last call),

      x0_target = (x*_{t_{i+1}} - (sigma'/sigma) x_{t_i}) / (alpha' - (sigma'/sigma) alpha)

  with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar) at t_i, primed at t_{i+1}. The student
  samples with DDIM (eta 0, x_0 unclipped) at exactly these ``calls`` times, and only at them.
- ``multistep`` (the same idea for the teacher's own solver): the student samples with DPM-Solver++(2M),
  x_0 unclipped, landing on t = 0 after its last call (``final="step"``), at ``calls`` times fitted on
  the teacher for exactly that (``schedule_fit``, before the first step; the times are kept in the
  checkpoint). The teacher's trajectory visits those times with ``teacher_calls / calls`` calls per
  segment (the extra ones evenly in lambda) and lands on t = 0 the same way. Each 2M step is linear in
  the student's x_0 estimates, x_next = A x + B D_i + C D_{i-1} (A, B, C read off the runtime's own
  ``dpm_solver_2m_step``), so the student's x_0 error at point i, in x_0 units, is

      e_i = D_i + (C / B) D_{i-1} - (x*_next - A x) / B,   loss = mean of e_i^2

  with D_{i-1} its own estimate at the teacher's previous state (gradients through both). Uniform in
  x_0 units, as the segment loss: weighting each point by B_i^2 (the error of the state it lands on,
  which puts nearly all weight on the last two) was measured worse (BENCHMARKS.md, "Four model calls").
  The student starts as the teacher with fitted times and learns the teacher's finer trajectory.

Every target's loss is, per point, the mean square of its x_0 error over the pixels (the default) or
pseudo-Huber of its RMS (``DistillConfig.loss``), averaged over the batch's points.

Either student keeps the teacher's parameterisation, so its export outputs eps like every model file.

The student starts from the teacher's EMA weights. Its checkpoint holds the teacher's weights too,
so a resumed run needs nothing but the checkpoint and goes on bit for bit. Pure: no files here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ddpm_runtime.guidance import guided_eps_model
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.samplers.dpm_solver import dpm_solver_2m_step
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.schedule_fit import fit_timesteps
from ddpm_runtime.timesteps import SIGMA_MAX, sampling_timesteps, times_of_lambdas

from .classes import ClassConditioning
from .compute import ComputeChoice, layout_name, precision_name
from .config import UNetConfig
from .diffusion import ForwardProcess
from .distributed import DistInfo
from .ema import EMA
from .errors import TrainingError
from .prediction import eps_network
from .torch_eps import numpy_eps_model
from .train_config import TrainConfig
from .trainer import LogRecord, Trainer
from .trajectory_pool import TrajectoryPool
from .unet import Unet

TEACHER_SAMPLER, TEACHER_SPACING = "dpm-solver++", "karras"
# per target: the student's sampler and the options it runs with (written into the export's metadata)
STUDENT_SAMPLERS = {
    "end": ("consistency", {}),
    "segment": ("ddim", {"eta": 0.0, "x0": "none"}),
    "multistep": ("dpm-solver++", {"x0": "none", "final": "step"}),
}
FIT_NOISES = 128  # starting noises the multistep student's times are fitted on (fit-schedule's default)
TARGETS = tuple(STUDENT_SAMPLERS)
LOSSES = ("mse", "pseudo-huber")
# a 1-call student's teacher calls unless given: karras 10 calls gave the v + cosine demo teacher FID 6.1
# against 10.0 at 8 (x_0 clipped), and its 1-call student 18.5 against 22.8 in the mean of three seeds
# (BENCHMARKS.md, "Better targets for one call"); other call counts keep DistillConfig's 8
ONE_CALL_TEACHER_CALLS = 10

# pseudo-Huber's c on the per-point RMS error: Song and Dhariwal 2023's 0.00054 sqrt(d) on the error's
# norm, divided by sqrt(d) (d = the pixels of one image)
PSEUDO_HUBER_C = 0.00054


@dataclass(frozen=True)
class DistillConfig:
    calls: int = 4  # model calls the student samples with
    teacher_calls: int = 8  # teacher calls per trajectory; a multiple of calls
    # class-conditional teachers: the guidance scale the teacher's trajectories are drawn with (folded
    # into the student, which then needs one call per step), and the share of trajectories drawn
    # without a class (unguided), so the student keeps the "no class" model too
    guidance_scale: float = 0.0
    null_share: float = 0.1
    target: str = "end"  # TARGETS: the trajectory's end (consistency), the next student time (DDIM, 2M)
    # how often each teacher trajectory is learnt from, on average: 1 draws every step's trajectories
    # afresh; R > 1 draws 1/R of them and takes the step's batch from a pool of recent ones (TrajectoryPool)
    reuse: int = 1
    # "mse": the mean square of the x_0 error over every pixel; "pseudo-huber": per point
    # sqrt(e^2 + c^2) - c of its RMS error e (c = PSEUDO_HUBER_C), so a point's pull on the weights
    # grows with its error only up to c and is then about constant (Song and Dhariwal 2023, section 3.3)
    loss: str = "mse"

    @property
    def sampler(self) -> str:
        return STUDENT_SAMPLERS[self.target][0]

    @property
    def sampler_options(self) -> dict:
        return dict(STUDENT_SAMPLERS[self.target][1])

    def call_counts(self) -> list[int]:
        """The call counts the student serves: every divisor of ``calls`` for the end target (any student
        time lies on the same trajectory), only ``calls`` for segments (each learnt for its own jump)."""
        return divisors(self.calls) if self.target == "end" else [self.calls]

    @property
    def fits_times(self) -> bool:
        """Whether the student's call times are fitted on the teacher (else every k-th karras time)."""
        return self.target == "multistep"

    def check(self, batch_size: int) -> None:
        if self.target not in TARGETS:
            raise TrainingError(f"--target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.loss not in LOSSES:
            raise TrainingError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 1 <= self.calls <= self.teacher_calls or self.teacher_calls % self.calls:
            raise TrainingError(
                f"--calls {self.calls} must divide --teacher-calls {self.teacher_calls} (and be at least 1)"
            )
        if batch_size % self.calls:
            raise TrainingError(f"--batch-size {batch_size} must be a multiple of --calls {self.calls}")
        count = batch_size // self.calls
        if self.reuse < 1 or count % self.reuse:
            raise TrainingError(
                f"--reuse {self.reuse} must be at least 1 and divide the {count} trajectories of a step "
                f"(--batch-size {batch_size} / --calls {self.calls})"
            )

    def to_dict(self) -> dict:
        return {
            "calls": self.calls,
            "teacher_calls": self.teacher_calls,
            "guidance_scale": self.guidance_scale,
            "null_share": self.null_share,
            "target": self.target,
            "reuse": self.reuse,
            "loss": self.loss,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DistillConfig:
        return cls(
            int(data["calls"]),
            int(data["teacher_calls"]),
            float(data.get("guidance_scale", 0.0)),
            float(data.get("null_share", 0.1)),
            str(data.get("target", "end")),  # runs before segments existed learnt the end
            int(data.get("reuse", 1)),
            str(data.get("loss", "mse")),
        )


def default_teacher_calls(calls: int) -> int:
    """--teacher-calls when not given: ONE_CALL_TEACHER_CALLS for a 1-call student, else DistillConfig's."""
    return ONE_CALL_TEACHER_CALLS if calls == 1 else DistillConfig.teacher_calls


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


def refuse_non_teacher(checkpoint: dict, source: str, guidance_scale: float = 0.0) -> None:
    """A teacher is a trained ``ddpm train`` checkpoint (not itself a student); guidance needs a
    class-conditional one trained with label dropout (its unconditional model)."""
    if "distill" in checkpoint:
        raise TrainingError(f"{source}: is a distilled student, not a teacher; distil from a `ddpm train` checkpoint")
    classes = ClassConditioning.from_checkpoint(checkpoint, source)
    if guidance_scale and classes is None:
        raise TrainingError(f"{source}: is an unconditional model; --guidance-scale needs a class-conditional teacher")
    if guidance_scale and classes.label_dropout == 0:
        raise TrainingError(
            f"{source}: was trained without label dropout, so it has no unconditional model to guide with"
        )
    if int(checkpoint["step"]) < 1:
        raise TrainingError(f"{source}: has no training steps; a teacher must be trained first")


class Distiller(Trainer):
    """A Trainer whose batches are teacher trajectories instead of data (``fit`` and the run folder
    take it as they take a Trainer)."""

    def __init__(
        self,
        teacher_checkpoint: dict,
        train_config: TrainConfig,
        distill_config: DistillConfig,
        device: torch.device | str = "cpu",
        teacher_source: str = "teacher",
        student_call_times=None,
    ):
        """``student_call_times``: a multistep student's fitted times when resuming (None: fit them now)."""
        refuse_non_teacher(teacher_checkpoint, teacher_source, distill_config.guidance_scale)
        distill_config.check(train_config.batch_size)
        self.model_config = UNetConfig.from_dict(teacher_checkpoint["model_config"])
        self.classes = ClassConditioning.from_checkpoint(teacher_checkpoint, teacher_source)
        self.schedule = NoiseSchedule.from_config(ScheduleConfig.from_dict(teacher_checkpoint["schedule"]))
        self.config = train_config
        self.distill_config = distill_config
        self.device = torch.device(device)
        self.dist = DistInfo()
        teacher_config = TrainConfig.from_dict(teacher_checkpoint.get("train_config", {}))
        self.teacher_info = {
            "step": int(teacher_checkpoint["step"]),
            "data": teacher_checkpoint.get("data", {}),
            "source": teacher_source,
            "train_config": teacher_config.to_dict(),
        }
        self.data_info = dict(teacher_checkpoint.get("data", {}))
        self.steps_per_epoch = 2**62  # no data, no epochs
        self.local_batch = train_config.batch_size
        self.parameterisation = teacher_config.parameterisation
        if train_config.parameterisation != self.parameterisation:
            raise TrainingError(
                f"{teacher_source}: the student keeps the teacher's parameterisation "
                f"({self.parameterisation.kind}), not {train_config.prediction}"
            )

        torch.manual_seed(train_config.seed)
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        self.teacher = Unet(self.model_config)
        try:
            self.teacher.load_state_dict(teacher_checkpoint["ema"])
        except (RuntimeError, KeyError) as exc:
            raise TrainingError(f"{teacher_source}: teacher weights do not fit its model ({str(exc)[:120]})") from None
        self.teacher = self.teacher.to(self.device).eval().requires_grad_(False)
        self.model = copy.deepcopy(self.teacher).train().requires_grad_(True)
        self.model = self.model.to(memory_format=self.memory_format)
        self.ema = EMA(self.model, train_config.ema_decay)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train_config.lr, betas=(0.9, train_config.adam_beta2), fused=True
        )
        self.ddp = self.model
        self.forward_process = ForwardProcess(self.schedule, self.device)
        self.generator = torch.Generator().manual_seed(train_config.seed)
        self.step, self.elapsed_s, self.progress = 0, 0.0, 0.0
        self.history: list[LogRecord] = []
        bf16, channels_last = train_config.bf16, train_config.channels_last
        self.compute = ComputeChoice(precision_name(bf16), layout_name(channels_last), bf16, channels_last, "as given")
        self._teacher_eps = numpy_eps_model(eps_network(self.teacher, self.parameterisation, self.schedule.alpha_bars))
        count = train_config.batch_size // distill_config.calls
        self.pool = TrajectoryPool(count, distill_config.reuse) if distill_config.reuse > 1 else None
        stride = distill_config.teacher_calls // distill_config.calls
        self._indices = list(range(0, distill_config.teacher_calls, stride))  # teacher calls at student times
        self.fit_info: dict | None = None
        if distill_config.fits_times:
            if self.classes is not None:
                raise TrainingError(
                    f"{teacher_source}: --target multistep does not take class-conditional teachers yet "
                    "(its times are fitted without classes); use --target end or segment"
                )
            if student_call_times is None:
                student_call_times = self._fit_student_times(train_config.seed)
            self._student_times = np.asarray(student_call_times, dtype=np.float64)
            self._teacher_times = refined_times(self.schedule, self._student_times, stride)
        else:
            self._teacher_times = teacher_times(self.schedule, distill_config)
            self._student_times = self._teacher_times[self._indices]
        ab = np.asarray(self.schedule.alpha_bar_at(self._student_times), dtype=np.float64)
        self._segment_alpha_bars = (ab, np.append(ab[1:], 1.0))  # the last jump lands on the image
        # a multistep student (and its teacher) land on t = 0: the 2M steps' coefficients, per student call
        self._steps = (
            step_coefficients(ab, float(self.schedule.alpha_bar_at(0.0))) if distill_config.fits_times else None
        )

    def _fit_student_times(self, seed: int) -> np.ndarray:
        """The multistep student's call times: those ``ddpm fit-schedule --final step`` fits for the teacher
        (the runtime's ``fit_timesteps``, the sampler's declared x_0 clipping, FIT_NOISES noises of their
        own seed, not the training generator's). On the Zen 4 teacher (BENCHMARKS.md, "No model call at
        t = 0"), one run each: from these times (999, 976, 900, 458) the student reached FID 9.95 in the mean
        of three seeds, from times fitted with x_0 unclipped as it samples (999, 938, 828, 371) 11.46."""
        import time

        cfg, d = self.model_config, self.distill_config
        x_T = np.random.default_rng([seed, 1]).standard_normal(
            (FIT_NOISES, cfg.im_channels, cfg.image_size, cfg.image_size)
        )
        start = time.perf_counter()
        landing = {"final": d.sampler_options["final"]}
        fit = fit_timesteps(self._teacher_eps, self.schedule, x_T, d.calls, d.sampler, options=landing)
        self.fit_info = {
            "seconds": round(time.perf_counter() - start, 1),
            "error": fit.error,
            "start_error": fit.start_error,
            "start_spacing": fit.start_spacing,
        }
        return np.asarray(fit.timesteps, dtype=np.float64)

    def describe(self) -> str:
        from .unet import count_parameters

        d = self.distill_config
        guided = f", guidance {d.guidance_scale:g} folded in" if self.classes is not None else ""
        teacher = f"{TEACHER_SAMPLER} {TEACHER_SPACING}" if not d.fits_times else f"{TEACHER_SAMPLER}, landing on t = 0"
        times = ", ".join(f"{t:.1f}" for t in self._student_times)
        reuse = "" if self.pool is None else f" from a pool of {self.pool.size}, each used {d.reuse}x on average"
        reuse += "" if d.loss == "mse" else f", {d.loss} loss"
        fitted = ""
        if self.fit_info is not None:
            f = self.fit_info
            fitted = (
                f"; fitted on the teacher in {f['seconds']:.0f} s, error {f['error']:.2e} against "
                f"{f['start_error']:.2e} at {f['start_spacing']} spacing"
            )
        return (
            f"distilling {count_parameters(self.model):,} parameters for {d.calls} call(s) ({d.sampler}, target "
            f"{d.target}){guided} from a teacher of "
            f"{self.teacher_info['step']:,} steps ({teacher}, {d.teacher_calls} calls; "
            f"{self.config.batch_size // d.calls} trajectories per step{reuse}, {self.device}); "
            f"student calls at t = {times}{fitted}"
        )

    def preview_sampling(self) -> tuple[str, np.ndarray]:
        return self.distill_config.sampler, self._student_times

    @property
    def preview_options(self) -> dict:
        return self.distill_config.sampler_options

    @property
    def preview_guidance_scale(self) -> float:
        return 0.0  # a guided student has its guidance inside

    # ---- one step
    def trajectories(self, count: int):
        """(x at the student's times (count * calls, C, H, W), those times (count * calls,), the teacher's
        images x0* repeated per point, and for a conditional teacher each point's class label, else None)
        from ``count`` starting noises (and labels) drawn from the generator."""
        return self.as_batch(*self.teacher_points(count))

    def teacher_points(self, count: int):
        """(x (count, calls, C, H, W) at the student's times, the targets there (the same shape), labels
        (count,) or None) from ``count`` fresh teacher trajectories."""
        cfg = self.model_config
        shape = (count, cfg.im_channels, cfg.image_size, cfg.image_size)
        x_T = torch.randn(shape, generator=self.generator, dtype=torch.float64).numpy()
        teacher_eps, labels = self._teacher_eps, None
        if self.classes is not None:
            # drawn after x_T, only here: an unconditional distillation's random numbers are untouched
            classes = torch.randint(0, cfg.num_classes, (count,), generator=self.generator)
            unguided = torch.rand((count,), generator=self.generator) < self.distill_config.null_share
            labels = torch.where(unguided, cfg.null_class, classes).numpy()
            scale = self.distill_config.guidance_scale
            teacher_eps = guided_eps_model(self._teacher_eps, labels, cfg.null_class, scale)
        states = {0: x_T}

        def keep(i, t, x):
            if i + 1 in self._indices:
                states[i + 1] = x.copy()

        landing = {"final": "step"} if self._steps is not None else {}  # a multistep student's t = 0
        end = get_sampler(TEACHER_SAMPLER).sample(
            teacher_eps, x_T, self.schedule, self._teacher_times, callback=keep, x0="none", **landing
        )
        if self._steps is None:
            end = np.clip(end, -1.0, 1.0)  # the image (a landing state at t = 0 stays as the solver left it)
        x = np.stack([states[i] for i in self._indices], axis=1)  # (count, calls, C, H, W)
        if self._steps is not None:
            a, b, _ = (v.reshape(1, -1, 1, 1, 1) for v in self._steps)
            nxt = np.stack([states[i] for i in self._indices[1:]] + [end], axis=1)
            target = (nxt - a * x) / b  # e_i's fixed part (module docstring)
        elif self.distill_config.target == "segment":
            nxt = np.stack([states[i] for i in self._indices[1:]] + [end], axis=1)
            target = segment_targets(x, nxt, self._segment_alpha_bars)
        else:
            target = np.broadcast_to(end[:, None], x.shape)
        return x, target, labels

    def as_batch(self, x: np.ndarray, target: np.ndarray, labels: np.ndarray | None):
        """Trajectories (count, calls, ...) as the flat tensors of one step: x, t, target, y."""
        count, calls = x.shape[:2]
        flat = (count * calls, *x.shape[2:])
        t = np.broadcast_to(self._teacher_times[self._indices], (count, calls))
        # a copy: broadcast views (1-call targets, t) are read-only, and torch wants writable memory
        as_tensor = lambda a, s: torch.from_numpy(np.array(a, np.float32).reshape(s)).to(self.device)  # noqa: E731
        y = None
        if labels is not None:
            y = torch.from_numpy(np.repeat(labels, calls)).to(self.device)
        return as_tensor(x, flat), as_tensor(t, (flat[0],)), as_tensor(target, flat), y

    def distill_loss(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        target: torch.Tensor,
        y=None,
        prev_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The student's x_0 error against the teacher's target (``DistillConfig.loss``), in float32.
        ``prev_weight`` (multistep students; per point, the points of one trajectory consecutive): the
        multiple of its x_0 estimate at the trajectory's previous point the error adds (C / B in the
        module docstring; 0 at the first)."""
        ab = self.forward_process.alpha_bar_at(t)[:, None, None, None]
        inputs = self.parameterisation.network_input(x, ab)
        output = (self.ddp(inputs, t) if y is None else self.ddp(inputs, t, y)).float()
        eps = self.parameterisation.eps(output, x, ab)
        x0 = (x - (1.0 - ab).sqrt() * eps) / ab.sqrt()
        if prev_weight is not None:
            calls = self.distill_config.calls
            per_trajectory = x0.reshape(-1, calls, *x0.shape[1:])
            prev = torch.cat([torch.zeros_like(per_trajectory[:, :1]), per_trajectory[:, :-1]], dim=1)
            x0 = x0 + prev_weight[:, None, None, None] * prev.reshape(x0.shape)
        return point_loss(x0 - target, self.distill_config.loss).mean()

    def prev_weights(self, count: int) -> torch.Tensor | None:
        """C / B per point of ``count`` trajectories (multistep students), else None."""
        if self._steps is None:
            return None
        _, b, c = self._steps
        return torch.from_numpy(np.tile(c / b, count)).float().to(self.device)

    def train_step(self) -> torch.Tensor:
        count = self.config.batch_size // self.distill_config.calls
        if self.pool is None:
            x, t, target, y = self.trajectories(count)
        else:
            x, t, target, y = self.as_batch(*self.pool.batch(self.step, self.teacher_points, self.generator))
        x = x.contiguous(memory_format=self.memory_format)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            loss = self.distill_loss(x, t, target, y, self.prev_weights(count))
        return self.apply_gradients(loss)

    # ---- checkpoint state
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["distill"] = {
            **self.distill_config.to_dict(),
            "teacher": self.teacher_info,
            "sampler": self.distill_config.sampler,
            "sampler_options": self.distill_config.sampler_options,
            "timesteps": {str(c): [float(v) for v in self.call_times(c)] for c in self.distill_config.call_counts()},
        }
        state["teacher"] = self.teacher.state_dict()
        if self.pool is not None:
            state["pool"] = self.pool.state_dict()
        return state

    def call_times(self, calls: int) -> np.ndarray:
        """The student's times for ``calls`` (one of ``DistillConfig.call_counts``)."""
        if self.distill_config.fits_times:
            return self._student_times
        return student_times(self.schedule, self.distill_config, calls)

    def load_state_dict(self, checkpoint: dict, source: str = "checkpoint") -> None:
        """Continue the student run in ``checkpoint`` (Trainer's checks, and the same distillation)."""
        saved = DistillConfig.from_dict(checkpoint["distill"])
        if saved != self.distill_config:
            raise TrainingError(f"{source}: cannot resume: it distils for {saved}, not {self.distill_config}")
        super().load_state_dict(checkpoint, source)
        if self.pool is not None:
            try:
                self.pool.load_state_dict(checkpoint.get("pool", {}))
            except (KeyError, ValueError, AttributeError) as exc:
                raise TrainingError(f"{source}: its trajectory pool does not fit the run ({exc})") from None


def point_loss(error: torch.Tensor, kind: str) -> torch.Tensor:
    """Per point (the first axis) of the x_0 ``error``: its mean square ("mse"), or pseudo-Huber of its
    RMS e, sqrt(e^2 + c^2) - c ("pseudo-huber")."""
    square = error.flatten(1).pow(2).mean(dim=1)
    if kind == "pseudo-huber":
        return torch.sqrt(square + PSEUDO_HUBER_C**2) - PSEUDO_HUBER_C
    return square


def segment_targets(x: np.ndarray, nxt: np.ndarray, alpha_bars: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The x_0 whose DDIM step (eta 0) from x at each student time lands on ``nxt`` at the next one.

    x, nxt: (count, calls, C, H, W); alpha_bars: (alpha_bar at the calls' times, at the next times, 1 after
    the last). Solves nxt = alpha' x0 + sigma' (x - alpha x0) / sigma for x0."""
    ab, ab_next = (np.asarray(a, dtype=np.float64).reshape(1, -1, 1, 1, 1) for a in alpha_bars)
    ratio = np.sqrt(1.0 - ab_next) / np.sqrt(1.0 - ab)  # sigma' / sigma
    return (nxt - ratio * x) / (np.sqrt(ab_next) - ratio * np.sqrt(ab))


def divisors(n: int) -> list[int]:
    return [c for c in range(1, n + 1) if n % c == 0]
