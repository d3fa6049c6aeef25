"""One place where a run's settings are decided: preset + command-line options + resumed checkpoint.

Precedence, for a new run: the preset's model (shaped to the data), ``ScheduleConfig``'s and
``TrainConfig``'s defaults, then the options the user gave. For a resumed run: the checkpoint's
model, schedule and training settings, then the options the user gave (``Trainer.load_state_dict``
refuses changes to the maths); new stop options replace all saved ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ddpm_runtime.schedule import ScheduleConfig

from .checkpoint import checkpoint_configs
from .config import DEFAULT_PRESET, UNetConfig, preset
from .errors import TrainingError
from .train_config import STOP_FIELDS, TrainConfig

DEFAULT_RUN_FOLDER = Path("runs/ddpm")  # where `ddpm train` writes when neither --out nor --resume says


@dataclass
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


@dataclass(frozen=True)
class RunSettings:
    model_config: UNetConfig
    schedule_config: ScheduleConfig
    train_config: TrainConfig
    folder: Path


def data_limit(request: TrainRequest, checkpoint: dict | None) -> int | None:
    """--limit, or for a resumed run the limit it was started with (its data must be the same images)."""
    if request.limit is None and checkpoint is not None:
        return checkpoint.get("data", {}).get("limit")
    return request.limit


def resolve_settings(request: TrainRequest, checkpoint: dict | None, channels: int, image_size: int) -> RunSettings:
    """The run's model, schedule, training settings and folder (see the module docstring for precedence)."""
    if checkpoint is None:
        model_config = preset(request.preset or DEFAULT_PRESET).with_image(channels, image_size)
        schedule_config = ScheduleConfig(**request.schedule_options)
        train_config = TrainConfig(**request.train_options)
        return RunSettings(model_config, schedule_config, train_config, request.out or DEFAULT_RUN_FOLDER)

    source = request.resume
    saved_model, saved_schedule = checkpoint_configs(source, checkpoint)
    if request.preset is not None and preset(request.preset).with_image(channels, image_size) != saved_model:
        raise TrainingError(f"{source}: cannot resume: it holds another model config than --preset {request.preset}")
    schedule_config = ScheduleConfig.from_dict({**saved_schedule.to_dict(), **request.schedule_options})
    try:
        saved_train = TrainConfig.from_dict(checkpoint.get("train_config", {})).to_dict()
    except TrainingError as exc:
        raise TrainingError(f"{source}: {exc}") from None
    if any(request.train_options.get(name) is not None for name in STOP_FIELDS):
        # New stop rules replace the saved ones; without any, the run continues to its original target.
        saved_train.update(dict.fromkeys(STOP_FIELDS))
    train_config = TrainConfig(**{**saved_train, **request.train_options})
    return RunSettings(saved_model, schedule_config, train_config, request.out or Path(source).parent)
