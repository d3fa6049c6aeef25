"""The teacher of a distillation: a trained `ddpm train` checkpoint, or the copy a student's checkpoint keeps."""

from __future__ import annotations

from dataclasses import dataclass

from ddpm_runtime.schedule import ScheduleConfig

from ..data.classes import ClassConditioning
from ..errors import TrainingError
from ..model.config import UNetConfig
from ..train.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class Teacher:
    model_config: UNetConfig
    schedule_config: ScheduleConfig
    train_config: TrainConfig  # how it was trained: the student keeps its parameterisation
    classes: ClassConditioning | None
    weights: dict  # its EMA state dict
    step: int  # its training steps
    data: dict  # its checkpoint's "data" entry (fingerprint, source, ...)
    source: str  # where it was read from, for messages and the student's record

    @property
    def info(self) -> dict:
        """The student checkpoint's record of its teacher ("distill" -> "teacher")."""
        config = self.train_config.to_dict()
        return {"step": self.step, "data": self.data, "source": self.source, "train_config": config}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, source: str, guidance_scale: float = 0.0) -> Teacher:
        """A `ddpm train` checkpoint as a teacher (refused if it cannot be one, see ``refuse_non_teacher``)."""
        refuse_non_teacher(checkpoint, source, guidance_scale)
        return cls(
            model_config=UNetConfig.from_dict(checkpoint["model_config"]),
            schedule_config=ScheduleConfig.from_dict(checkpoint["schedule"]),
            train_config=_train_config(checkpoint.get("train_config", {}), source),
            classes=ClassConditioning.from_checkpoint(checkpoint, source),
            weights=checkpoint["ema"],
            step=int(checkpoint["step"]),
            data=dict(checkpoint.get("data", {})),
            source=source,
        )

    @classmethod
    def of_student(cls, checkpoint: dict, source: str) -> Teacher:
        """The teacher a `ddpm distill` checkpoint keeps (its weights and record), so that a resumed run
        needs nothing but the student's checkpoint."""
        if "distill" not in checkpoint or "teacher" not in checkpoint:
            raise TrainingError(f"{source}: is not a `ddpm distill` run; to distil from it, give it as TEACHER")
        info = checkpoint["distill"]["teacher"]
        return cls(
            model_config=UNetConfig.from_dict(checkpoint["model_config"]),
            schedule_config=ScheduleConfig.from_dict(checkpoint["schedule"]),
            train_config=_train_config(info["train_config"], source),
            classes=ClassConditioning.from_checkpoint(checkpoint, source),
            weights=checkpoint["teacher"],
            step=int(info["step"]),
            data=dict(info["data"]),
            source=str(info["source"]),
        )


def _train_config(data: dict, source: str) -> TrainConfig:
    try:
        return TrainConfig.from_dict(data)
    except TrainingError as exc:
        raise TrainingError(f"{source}: {exc}") from None


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
