"""Distillation as a Trainer's ``Objective``: the student's batches are points on the teacher's own
trajectories, drawn fresh (or from a pool, ``pool.py``), and its loss is ``targets.py``'s.

``student_trainer`` builds the Trainer: the teacher's network, started from the teacher's EMA weights,
learning this objective. The student's checkpoint holds the teacher's weights too, so a resumed run
needs nothing but the checkpoint and goes on bit for bit. No files here.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ddpm_runtime.default_sampling import StudentSampling, default_sampling
from ddpm_runtime.guidance import guided_eps_model
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.schedule_fit import fit_timesteps

from ..diffusion.forward import ForwardProcess
from ..diffusion.parameterisation import eps_network
from ..diffusion.torch_eps import numpy_eps_model
from ..errors import TrainingError
from ..model.unet import Unet
from ..train.config import TrainConfig
from ..train.trainer import PreviewSampling, Trainer
from .config import FIT_NOISES, TEACHER_SAMPLER, TEACHER_SPACING, DistillConfig
from .pool import TrajectoryPool
from .targets import point_loss, refined_times, segment_targets, step_coefficients, student_times, teacher_times
from .teacher import Teacher


class DistillObjective:
    steps_per_epoch = None  # no data, no epochs

    def __init__(
        self,
        teacher: Teacher,
        train_config: TrainConfig,
        distill_config: DistillConfig,
        device: torch.device | str = "cpu",
        student_call_times=None,
    ):
        """``student_call_times``: a multistep student's fitted times when resuming (None: fit them now)."""
        distill_config.check(train_config.batch_size)
        self.teacher_record = teacher
        self.model_config, self.classes = teacher.model_config, teacher.classes
        self.schedule = NoiseSchedule.from_config(teacher.schedule_config)
        self.config, self.distill_config = train_config, distill_config
        self.device = torch.device(device)
        self.data_info = dict(teacher.data)
        self.parameterisation = teacher.train_config.parameterisation
        if train_config.parameterisation != self.parameterisation:
            raise TrainingError(
                f"{teacher.source}: the student keeps the teacher's parameterisation "
                f"({self.parameterisation.kind}), not {train_config.prediction}"
            )
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        self.teacher = Unet(self.model_config)
        try:
            self.teacher.load_state_dict(teacher.weights)
        except (RuntimeError, KeyError) as exc:
            raise TrainingError(f"{teacher.source}: teacher weights do not fit its model ({str(exc)[:120]})") from None
        self.teacher = self.teacher.to(self.device).eval().requires_grad_(False)
        self.forward_process = ForwardProcess(self.schedule, self.device)
        self._teacher_eps = numpy_eps_model(eps_network(self.teacher, self.parameterisation, self.schedule.alpha_bars))
        count = train_config.batch_size // distill_config.calls
        self.pool = TrajectoryPool(count, distill_config.reuse) if distill_config.reuse > 1 else None
        stride = distill_config.teacher_calls // distill_config.calls
        self._indices = list(range(0, distill_config.teacher_calls, stride))  # teacher calls at student times
        self.fit_info: dict | None = None
        if distill_config.fits_times:
            if self.classes is not None:
                raise TrainingError(
                    f"{teacher.source}: --target multistep does not take class-conditional teachers yet "
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
        own seed, not the training generator's; docs/benchmarks/few-calls.md, "Multistep students")."""
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

    def describe(self, parameters: int) -> str:
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
            f"distilling {parameters:,} parameters for {d.calls} call(s) ({d.sampler}, target "
            f"{d.target}){guided} from a teacher of "
            f"{self.teacher_record.step:,} steps ({teacher}, {d.teacher_calls} calls; "
            f"{self.config.batch_size // d.calls} trajectories per step{reuse}, {self.device}); "
            f"student calls at t = {times}{fitted}"
        )

    def student_sampling(self) -> StudentSampling:
        d = self.distill_config
        return StudentSampling(
            sampler=d.sampler, calls=d.calls, options=d.sampler_options, guided=self.classes is not None
        )

    def preview(self) -> PreviewSampling:
        default = default_sampling(self.parameterisation.kind, self.student_sampling())
        return PreviewSampling(default, self._student_times)

    def trajectories(self, count: int, generator: torch.Generator):
        """(x at the student's times (count * calls, C, H, W), those times (count * calls,), the teacher's
        images x0* repeated per point, and for a conditional teacher each point's class label, else None)
        from ``count`` starting noises (and labels) drawn from ``generator``."""
        return self.as_batch(*self.teacher_points(count, generator))

    def teacher_points(self, count: int, generator: torch.Generator):
        """(x (count, calls, C, H, W) at the student's times, the targets there (the same shape), labels
        (count,) or None) from ``count`` fresh teacher trajectories."""
        cfg = self.model_config
        shape = (count, cfg.im_channels, cfg.image_size, cfg.image_size)
        x_T = torch.randn(shape, generator=generator, dtype=torch.float64).numpy()
        teacher_eps, labels = self._teacher_eps, None
        if self.classes is not None:
            # drawn after x_T, only here: an unconditional distillation's random numbers are untouched
            classes = torch.randint(0, cfg.num_classes, (count,), generator=generator)
            unguided = torch.rand((count,), generator=generator) < self.distill_config.null_share
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
        network: torch.nn.Module,
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
        output = (network(inputs, t) if y is None else network(inputs, t, y)).float()
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

    def loss(self, network: torch.nn.Module, step: int, generator: torch.Generator) -> torch.Tensor:
        count = self.config.batch_size // self.distill_config.calls
        if self.pool is None:
            x, t, target, y = self.trajectories(count, generator)
        else:
            draw = lambda n: self.teacher_points(n, generator)  # noqa: E731
            x, t, target, y = self.as_batch(*self.pool.batch(step, draw, generator))
        x = x.contiguous(memory_format=self.memory_format)
        return self.distill_loss(network, x, t, target, y, self.prev_weights(count))

    # ---- checkpoint state
    def call_times(self, calls: int) -> np.ndarray:
        """The student's times for ``calls`` (one of ``DistillConfig.call_counts``)."""
        if self.distill_config.fits_times:
            return self._student_times
        return student_times(self.schedule, self.distill_config, calls)

    def state_dict(self) -> dict:
        d = self.distill_config
        state = {
            "distill": {
                **d.to_dict(),
                "teacher": self.teacher_record.info,
                "sampler": d.sampler,
                "sampler_options": d.sampler_options,
                "timesteps": {str(c): [float(v) for v in self.call_times(c)] for c in d.call_counts()},
            },
            "teacher": self.teacher.state_dict(),
        }
        if self.pool is not None:
            state["pool"] = self.pool.state_dict()
        return state

    def check_resume(self, checkpoint: dict, source: str) -> list[str]:
        if "distill" not in checkpoint:
            return ["it is not a `ddpm distill` run"]
        saved = DistillConfig.from_dict(checkpoint["distill"])
        if saved != self.distill_config:
            return [f"it distils for {saved}, not {self.distill_config}"]
        return []

    def load_state_dict(self, checkpoint: dict, source: str) -> None:
        if self.pool is not None:
            try:
                self.pool.load_state_dict(checkpoint.get("pool", {}))
            except (KeyError, ValueError, AttributeError) as exc:
                raise TrainingError(f"{source}: its trajectory pool does not fit the run ({exc})") from None


def student_trainer(
    teacher: Teacher,
    train_config: TrainConfig,
    distill_config: DistillConfig,
    device: torch.device | str = "cpu",
    student_call_times=None,
) -> Trainer:
    """A Trainer whose network starts as the teacher's EMA weights and learns ``DistillObjective``."""
    objective = DistillObjective(teacher, train_config, distill_config, device, student_call_times)
    return Trainer(
        teacher.model_config,
        teacher.schedule_config,
        train_config,
        objective,
        device=device,
        classes=teacher.classes,
        initial_weights=teacher.weights,
    )
