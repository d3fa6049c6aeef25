"""``ddpm distill`` as a library call: teacher checkpoint (or a student run to resume) -> a run folder.

The run folder is a training run's (checkpoint.pt, config.json, loss.csv/png, samples/), written the
same way: atomically, every ``checkpoint_every`` steps and at the end, after SIGTERM too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ddpm_runtime.files import check_free_space
from ddpm_runtime.guidance import DEFAULT_GUIDANCE_SCALE, check_guidance_scale
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig

from .checkpoint import load_checkpoint
from .compute import DEFAULT_LAYOUT, DEFAULT_PRECISION, ComputeChoice, choose_compute, detect_capabilities, step_timer
from .config import UNetConfig
from .diffusion import ForwardProcess
from .distill import DistillConfig, Distiller, default_teacher_calls, refuse_non_teacher
from .distributed import DistInfo, choose_device
from .errors import TrainingError
from .outputs import RunFolder
from .run import Callbacks, RunSummary, train_in_folder
from .train_config import STOP_FIELDS, TrainConfig

DEFAULT_DISTILL_FOLDER = Path("runs/student")
# The student's training settings unless given (BENCHMARKS.md, "Four model calls"): a fine-tune of the
# teacher's weights, so a tenth of the 15-minute recipe's peak rate and a short EMA.
DISTILL_DEFAULTS = {
    "batch_size": 64,
    "lr": 1e-4,
    "warmup_steps": 0,
    "lr_schedule": "cosine",
    "ema_decay": 0.99,
    "grad_clip": 1.0,
    "checkpoint_every": 250,
}


@dataclass
class DistillRequest:
    teacher: Path | None  # a `ddpm train` checkpoint; None when resuming (the student holds its teacher)
    out: Path | None = None  # default: the resumed checkpoint's folder, else DEFAULT_DISTILL_FOLDER
    resume: Path | None = None
    calls: int | None = None  # default: DistillConfig's, or the resumed run's
    teacher_calls: int | None = None
    guidance_scale: float | None = None  # conditional teachers; default: ddpm-run's guidance scale
    train_options: dict = field(default_factory=dict)  # TrainConfig fields the user gave
    precision: str = DEFAULT_PRECISION
    layout: str = DEFAULT_LAYOUT
    device: str = "auto"
    target: str | None = None  # DistillConfig.target; default: DistillConfig's, or the resumed run's
    reuse: int | None = None  # DistillConfig.reuse; default: DistillConfig's, or the resumed run's
    loss: str | None = None  # DistillConfig.loss; default: DistillConfig's, or the resumed run's
    deterministic: bool = True  # --deterministic: CUDA kernels that give the same bits on every run


def run_distill(request: DistillRequest, callbacks: Callbacks | None = None) -> RunSummary:
    callbacks = callbacks or Callbacks()
    device = choose_device(request.device, DistInfo(), request.deterministic)
    if request.resume is not None:
        if request.teacher is not None:
            raise TrainingError("give either a TEACHER checkpoint or --resume a student run, not both")
        checkpoint = load_checkpoint(request.resume)
        if "distill" not in checkpoint or "teacher" not in checkpoint:
            raise TrainingError(f"{request.resume}: is not a `ddpm distill` run; to distil from it, give it as TEACHER")
        distiller = _resumed(request, checkpoint, device)
        folder = RunFolder(request.out or Path(request.resume).parent)
    else:
        if request.teacher is None:
            raise TrainingError("give the TEACHER checkpoint to distil from (or --resume a student run)")
        teacher = load_checkpoint(request.teacher)
        refuse_non_teacher(teacher, str(request.teacher), request.guidance_scale or 0.0)
        train_config = _new_train_config(request, teacher)
        given = (
            ("calls", request.calls),
            ("teacher_calls", request.teacher_calls),
            ("target", request.target),
            ("reuse", request.reuse),
            ("loss", request.loss),
        )
        counts = {k: v for k, v in given if v}
        counts.setdefault("teacher_calls", default_teacher_calls(counts.get("calls", DistillConfig.calls)))
        guidance = request.guidance_scale
        if guidance is None:
            guidance = DEFAULT_GUIDANCE_SCALE if teacher.get("classes") else 0.0
        check_guidance_scale(guidance)
        config = DistillConfig(**counts, guidance_scale=float(guidance))
        config.check(train_config.batch_size)
        folder = RunFolder(request.out or DEFAULT_DISTILL_FOLDER)
        folder.check(None)  # before the timing: a taken folder is refused at once
        train_config, choice = _with_compute(request, teacher, train_config, device)
        distiller = Distiller(teacher, train_config, config, device, str(request.teacher))
        distiller.compute = choice
        checkpoint = None
    folder.check(request.resume)
    if checkpoint is not None:
        check_free_space(folder.checkpoint_path, Path(request.resume).stat().st_size)
    created = folder.prepare()
    try:
        return train_in_folder(distiller, folder, checkpoint, callbacks, DistInfo())
    except BaseException:
        if not folder.checkpoint_path.exists():
            folder.remove_empty(created)
        raise


def _new_train_config(request: DistillRequest, teacher: dict) -> TrainConfig:
    taught = TrainConfig.from_dict(teacher.get("train_config", {}))
    options = dict(request.train_options)
    if not any(options.get(name) is not None for name in STOP_FIELDS):
        raise TrainingError("give --max-steps or --max-minutes: a distillation has no epochs to count")
    if options.get("epochs") is not None:
        raise TrainingError("--epochs does not apply to a distillation (it sees no data); give --max-steps")
    kept = {"prediction": taught.prediction, "sigma_data": taught.sigma_data}  # the student's parameterisation
    return TrainConfig(**{**DISTILL_DEFAULTS, **kept, **options})


def _with_compute(
    request: DistillRequest, teacher: dict, config: TrainConfig, device
) -> tuple[TrainConfig, ComputeChoice]:
    """Precision and layout as asked, or for auto the faster on this machine for the teacher's model
    (timed as ``ddpm train`` times them: the student's step is that model's forward and backward)."""
    model_config = UNetConfig.from_dict(teacher["model_config"])
    forward = ForwardProcess(NoiseSchedule.from_config(ScheduleConfig.from_dict(teacher["schedule"])), device)
    timer = step_timer(model_config, forward, config.batch_size, device)
    choice = choose_compute(request.precision, request.layout, detect_capabilities(device), timer)
    return replace(config, bf16=choice.bf16, channels_last=choice.channels_last), choice


def _resumed(request: DistillRequest, checkpoint: dict, device) -> Distiller:
    saved = DistillConfig.from_dict(checkpoint["distill"])
    given = (
        ("--calls", request.calls),
        ("--teacher-calls", request.teacher_calls),
        ("--guidance-scale", request.guidance_scale),
        ("--target", request.target),
        ("--reuse", request.reuse),
        ("--loss", request.loss),
    )
    for name, value in given:
        if value is not None and value != getattr(saved, name[2:].replace("-", "_")):
            raise TrainingError(f"{request.resume}: cannot resume with {name} {value}: the run distils {saved}")
    saved_train = TrainConfig.from_dict(checkpoint.get("train_config", {})).to_dict()
    options = dict(request.train_options)
    if any(options.get(name) is not None for name in STOP_FIELDS):
        saved_train.update(dict.fromkeys(STOP_FIELDS))
    train_config = TrainConfig(**{**saved_train, **options})
    info = checkpoint["distill"]["teacher"]
    teacher = {
        "model_config": checkpoint["model_config"],
        "schedule": checkpoint["schedule"],
        "train_config": info["train_config"],
        "data": info["data"],
        "step": info["step"],
        "ema": checkpoint["teacher"],
        "model": checkpoint["teacher"],
    }
    times = checkpoint["distill"]["timesteps"][str(saved.calls)] if saved.fits_times else None
    distiller = Distiller(teacher, train_config, saved, device, info["source"], times)
    if "compute" in checkpoint:
        distiller.compute = ComputeChoice.from_dict(checkpoint["compute"])
    distiller.load_state_dict(checkpoint, str(request.resume))
    return distiller
