"""``ddpm distill`` as a library call: teacher checkpoint (or a student run to resume) -> a run folder.

The run folder is a training run's (checkpoint.pt, config.json, loss.csv/png, samples/), written the
same way (``train.session``): atomically, every ``checkpoint_every`` steps and at the end, after SIGTERM too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ddpm_runtime.guidance import DEFAULT_GUIDANCE_SCALE, check_guidance_scale

from ..errors import TrainingError
from ..train.checkpoint import load_checkpoint
from ..train.compute import DEFAULT_LAYOUT, DEFAULT_PRECISION
from ..train.config import STOP_FIELDS, TrainConfig
from ..train.distributed import DistInfo, choose_device
from ..train.run_folder import RunFolder
from ..train.session import Callbacks, RunSummary, holding, resumed_train_config, run_compute, run_in_folder
from ..train.trainer import Trainer
from .config import DistillConfig, default_teacher_calls
from .distiller import student_trainer
from .teacher import Teacher

DEFAULT_DISTILL_FOLDER = Path("runs/student")
# The student's training settings unless given: a fine-tune of the teacher's weights, so a lower peak
# rate than training's and a short EMA (docs/benchmarks/few-calls.md, "Distilled students: which
# target, what settings").
DISTILL_DEFAULTS = {
    "batch_size": 64,
    "lr": 1e-4,
    "warmup_steps": 0,
    "lr_schedule": "cosine",
    "ema_decay": 0.99,
    "grad_clip": 1.0,
    "checkpoint_every": 250,
}
# the DistillConfig fields a request may give, with their option names
DISTILL_OPTIONS = {
    "calls": "--calls",
    "teacher_calls": "--teacher-calls",
    "guidance_scale": "--guidance-scale",
    "target": "--target",
    "reuse": "--reuse",
    "loss": "--loss",
}


@dataclass(kw_only=True)
class DistillRequest:
    teacher: Path | None  # a `ddpm train` checkpoint; None when resuming (the student holds its teacher)
    out: Path | None = None  # default: the resumed checkpoint's folder, else DEFAULT_DISTILL_FOLDER
    resume: Path | None = None
    # DistillConfig fields the user gave (DISTILL_OPTIONS); the rest: DistillConfig's, or the resumed run's
    distill_options: dict = field(default_factory=dict)
    train_options: dict = field(default_factory=dict)  # TrainConfig fields the user gave
    precision: str = DEFAULT_PRECISION
    layout: str = DEFAULT_LAYOUT
    device: str = "auto"
    deterministic: bool = True  # --deterministic: CUDA kernels that give the same bits on every run


def run_distill(request: DistillRequest, callbacks: Callbacks | None = None) -> RunSummary:
    callbacks = callbacks or Callbacks()
    info = DistInfo()
    device = choose_device(request.device, info, request.deterministic)
    unknown = set(request.distill_options) - set(DISTILL_OPTIONS)
    if unknown:
        raise TrainingError(f"unknown distillation settings: {', '.join(sorted(unknown))}")
    if request.resume is not None:
        if request.teacher is not None:
            raise TrainingError("give either a TEACHER checkpoint or --resume a student run, not both")
        checkpoint = load_checkpoint(request.resume)
        teacher = Teacher.of_student(checkpoint, str(request.resume))
        config = _resumed_config(request, checkpoint)
        train_config = resumed_train_config(checkpoint, request.train_options, request.resume)
        folder = RunFolder(request.out or Path(request.resume).parent)
    else:
        if request.teacher is None:
            raise TrainingError("give the TEACHER checkpoint to distil from (or --resume a student run)")
        checkpoint = None
        taught = load_checkpoint(request.teacher)
        config = _new_config(request, taught)
        teacher = Teacher.from_checkpoint(taught, str(request.teacher), config.guidance_scale)
        train_config = _new_train_config(request, teacher)
        config.check(train_config.batch_size)
        folder = RunFolder(request.out or DEFAULT_DISTILL_FOLDER)
    with holding(folder, request.resume, info):  # before the timing: a taken folder is refused at once
        compute = run_compute(
            request.precision,
            request.layout,
            train_config,
            checkpoint,
            teacher.model_config,
            teacher.schedule_config,
            device,
            info,
        )
        train_config = replace(train_config, bf16=compute.bf16, channels_last=compute.channels_last)
        times = None
        if checkpoint is not None and config.fits_times:
            times = checkpoint["distill"]["timesteps"][str(config.calls)]
        trainer: Trainer = student_trainer(teacher, train_config, config, device, times)
        trainer.compute = compute
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint, str(request.resume))
        return run_in_folder(trainer, folder, checkpoint, request.resume, callbacks, info)


def _new_config(request: DistillRequest, teacher: dict) -> DistillConfig:
    given = {name: value for name, value in request.distill_options.items() if value is not None}
    given.setdefault("teacher_calls", default_teacher_calls(given.get("calls", DistillConfig.calls)))
    if given.get("guidance_scale") is None:
        given["guidance_scale"] = DEFAULT_GUIDANCE_SCALE if teacher.get("classes") else 0.0
    check_guidance_scale(given["guidance_scale"])
    given["guidance_scale"] = float(given["guidance_scale"])
    return DistillConfig(**given)


def _resumed_config(request: DistillRequest, checkpoint: dict) -> DistillConfig:
    saved = DistillConfig.from_dict(checkpoint["distill"])
    for name, value in request.distill_options.items():
        if value is not None and value != getattr(saved, name):
            raise TrainingError(
                f"{request.resume}: cannot resume with {DISTILL_OPTIONS[name]} {value}: the run distils {saved}"
            )
    return saved


def _new_train_config(request: DistillRequest, teacher: Teacher) -> TrainConfig:
    options = dict(request.train_options)
    if not any(options.get(name) is not None for name in STOP_FIELDS):
        raise TrainingError("give --max-steps or --max-minutes: a distillation has no epochs to count")
    if options.get("epochs") is not None:
        raise TrainingError("--epochs does not apply to a distillation (it sees no data); give --max-steps")
    taught = teacher.train_config
    kept = {"prediction": taught.prediction, "sigma_data": taught.sigma_data}  # the student's parameterisation
    return TrainConfig(**{**DISTILL_DEFAULTS, **kept, **options})
