"""What a distillation does: the student's calls, the teacher's trajectories, the target and its loss."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TrainingError

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
# a 1-call student's teacher calls unless given; other call counts keep DistillConfig's
# (docs/benchmarks/few-calls.md, "Teacher calls for a 1-call student")
ONE_CALL_TEACHER_CALLS = 10


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
        """A checkpoint's "distill" entry; fields it lacks take their defaults (runs that predate them)."""
        try:
            return cls(
                calls=int(data["calls"]),
                teacher_calls=int(data["teacher_calls"]),
                guidance_scale=float(data.get("guidance_scale", 0.0)),
                null_share=float(data.get("null_share", 0.1)),
                target=str(data.get("target", "end")),
                reuse=int(data.get("reuse", 1)),
                loss=str(data.get("loss", "mse")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError(f"its distillation settings are unreadable ({exc!r})") from None


def default_teacher_calls(calls: int) -> int:
    """--teacher-calls when not given: ONE_CALL_TEACHER_CALLS for a 1-call student, else DistillConfig's."""
    return ONE_CALL_TEACHER_CALLS if calls == 1 else DistillConfig.teacher_calls


@dataclass(frozen=True)
class StudentRecord:
    """What a student's checkpoint says of how it samples (its "distill" entry, read through DistillConfig)."""

    config: DistillConfig
    timesteps: dict[int, tuple[float, ...]]  # call times per call count it serves
    teacher_steps: int

    @property
    def sampler(self) -> str:
        return self.config.sampler

    @property
    def sampler_options(self) -> dict:
        return self.config.sampler_options


def student_record(checkpoint: dict, source) -> StudentRecord | None:
    """The student's record in a checkpoint, or None for a `ddpm train` checkpoint."""
    entry = checkpoint.get("distill")
    if entry is None:
        return None
    try:
        config = DistillConfig.from_dict(entry)
        timesteps = {int(calls): tuple(float(t) for t in times) for calls, times in entry["timesteps"].items()}
        return StudentRecord(config, timesteps, int(entry["teacher"]["step"]))
    except TrainingError as exc:
        raise TrainingError(f"{source}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrainingError(f"{source}: its distillation entry is unreadable ({exc!r})") from None


def divisors(n: int) -> list[int]:
    return [c for c in range(1, n + 1) if n % c == 0]
