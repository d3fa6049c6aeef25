"""One place where a run's settings are decided: preset + command-line options + resumed checkpoint.

Precedence, for a new run: the preset's model (shaped to the data), ``ScheduleConfig``'s and
``TrainConfig``'s defaults, then the options the user gave. For a resumed run: the checkpoint's
model, schedule and training settings, then the options the user gave (``Trainer.load_state_dict``
refuses changes to the maths); new stop options replace all saved ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ddpm_runtime.schedule import ScheduleConfig

from ..data import ImageData
from ..data.classes import ClassConditioning, resolve_class_names
from ..errors import TrainingError
from ..model.config import DEFAULT_PRESET, UNetConfig, preset
from .checkpoint import checkpoint_configs
from .compute import DEFAULT_LAYOUT, DEFAULT_PRECISION
from .config import TrainConfig
from .session import resumed_train_config

DEFAULT_RUN_FOLDER = Path("runs/ddpm")  # where `ddpm train` writes when neither --out nor --resume says


@dataclass(kw_only=True)
class TrainRequest:
    """What the user asked for; None means 'not given' (the preset's, defaults' or checkpoint's value)."""

    data: Path
    out: Path | None = None  # default: the resumed checkpoint's folder, else DEFAULT_RUN_FOLDER
    preset: str | None = None  # default: DEFAULT_PRESET, or the resumed checkpoint's model
    train_options: dict = field(default_factory=dict)  # TrainConfig fields the user gave explicitly
    schedule_options: dict = field(default_factory=dict)  # ScheduleConfig fields the user gave explicitly
    resume: Path | None = None
    device: str = "auto"
    limit: int | None = None  # default: the resumed run's --limit
    class_conditional: bool = False  # --class-conditional; a resumed run keeps what it was
    class_names: tuple[str, ...] | None = None  # --class-names, parsed
    label_dropout: float | None = None  # --label-dropout; default: classes.DEFAULT_LABEL_DROPOUT
    # --precision and --memory-format: as asked; auto measures for a new run (run.py) and keeps a resumed one's
    precision: str = DEFAULT_PRECISION
    layout: str = DEFAULT_LAYOUT
    deterministic: bool = True  # --deterministic: CUDA kernels that give the same bits on every run


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    model_config: UNetConfig
    schedule_config: ScheduleConfig
    train_config: TrainConfig
    folder: Path
    classes: ClassConditioning | None = None  # a class-conditional run's classes and label dropout


def resolve_classes(request: TrainRequest, checkpoint: dict | None, data: ImageData) -> ClassConditioning | None:
    """The classes of a conditional run (None: unconditional), from the options and the data, or
    from the resumed checkpoint, whose classes and label dropout cannot change."""
    if checkpoint is not None:
        source = request.resume
        saved = ClassConditioning.from_checkpoint(checkpoint, str(source))
        if request.class_conditional and saved is None:
            raise TrainingError(f"{source}: cannot resume with --class-conditional: it is an unconditional run")
        if saved is None:
            _refuse_class_options(request)
        elif request.class_names is not None and tuple(request.class_names) != saved.names:
            raise TrainingError(f"{source}: cannot resume: it was trained with the classes {', '.join(saved.names)}")
        elif request.label_dropout is not None and request.label_dropout != saved.label_dropout:
            raise TrainingError(f"{source}: cannot resume: it was trained with --label-dropout {saved.label_dropout}")
        return saved
    if not request.class_conditional:
        _refuse_class_options(request)
        return None
    names = resolve_class_names(data, request.class_names)
    if request.label_dropout is None:
        return ClassConditioning(names)
    return ClassConditioning(names, request.label_dropout)


def _refuse_class_options(request: TrainRequest) -> None:
    for flag, value in (("--class-names", request.class_names), ("--label-dropout", request.label_dropout)):
        if value is not None:
            raise TrainingError(f"{flag} applies to --class-conditional training only")


def data_limit(request: TrainRequest, checkpoint: dict | None) -> int | None:
    """--limit, or for a resumed run the limit it was started with (its data must be the same images)."""
    if request.limit is None and checkpoint is not None:
        return checkpoint.get("data", {}).get("limit")
    return request.limit


def resolve_settings(
    request: TrainRequest,
    checkpoint: dict | None,
    channels: int,
    image_size: int,
    classes: ClassConditioning | None = None,
) -> RunSettings:
    """The run's model, schedule, training settings and folder (see the module docstring for precedence).
    ``classes``: what ``resolve_classes`` decided; their number sets the model's classes."""
    num_classes = classes.num_classes if classes else 0
    explicit = {}  # an explicit precision or layout is a training option like any other
    if request.precision != "auto":
        explicit["bf16"] = request.precision == "bf16"
    if request.layout != "auto":
        explicit["channels_last"] = request.layout == "channels_last"
    request = replace(request, train_options={**request.train_options, **explicit})
    if checkpoint is None:
        model_config = preset(request.preset or DEFAULT_PRESET).with_image(channels, image_size)
        model_config = model_config.with_classes(num_classes)
        schedule_config = ScheduleConfig(**request.schedule_options)
        train_config = TrainConfig(**request.train_options)
        return RunSettings(
            model_config=model_config,
            schedule_config=schedule_config,
            train_config=train_config,
            folder=request.out or DEFAULT_RUN_FOLDER,
            classes=classes,
        )

    source = request.resume
    saved_model, saved_schedule = checkpoint_configs(source, checkpoint)
    wanted = None if request.preset is None else preset(request.preset).with_image(channels, image_size)
    if wanted is not None and wanted.with_classes(saved_model.num_classes) != saved_model:
        raise TrainingError(f"{source}: cannot resume: it holds another model config than --preset {request.preset}")
    schedule_config = ScheduleConfig.from_dict({**saved_schedule.to_dict(), **request.schedule_options})
    train_config = resumed_train_config(checkpoint, request.train_options, source)
    return RunSettings(
        model_config=saved_model,
        schedule_config=schedule_config,
        train_config=train_config,
        folder=request.out or Path(source).parent,
        classes=classes,
    )
