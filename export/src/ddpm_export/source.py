"""What an export starts from: a checkpoint's config, schedule and chosen weights, as an eval-mode Unet."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddpm_runtime.default_sampling import StudentSampling, default_sampling
from ddpm_runtime.metadata import ClassSpec, FittedTimesteps, ImageSpec, ModelMetadata
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training.data.classes import ClassConditioning
from ddpm_training.diffusion.parameterisation import Parameterisation, eps_network
from ddpm_training.distill.config import StudentRecord, student_record
from ddpm_training.errors import TrainingError
from ddpm_training.model.config import UNetConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import checkpoint_configs, load_checkpoint
from ddpm_training.train.config import TrainConfig

from . import __version__
from .errors import ExportError

WEIGHTS = ("ema", "raw")  # the first is the default: the EMA is what sampling should use


@dataclass
class ExportSource:
    path: Path
    model: torch.nn.Module  # x_t, t[, y] -> eps: the Unet, wrapped if it predicts something else; eval, float32, CPU
    model_config: UNetConfig
    schedule: ScheduleConfig
    weights: str  # "ema" or "raw"
    step: int
    checkpoint_sha256: str
    data_fingerprint: str | None
    classes: ClassConditioning | None = None  # a class-conditional model's classes and label dropout
    # what the Unet predicts (the export outputs eps whatever it is)
    parameterisation: Parameterisation = field(default_factory=Parameterisation)
    distill: StudentRecord | None = None  # a distilled student's sampler, call times and teacher

    @property
    def conditional(self) -> bool:
        return self.classes is not None

    def metadata(self, exporter: dict) -> ModelMetadata:
        cfg = self.model_config
        classes = None
        training = {}
        if self.classes is not None:
            classes = ClassSpec(self.classes.names, cfg.null_class)
            training = {"label_dropout": self.classes.label_dropout}  # 0: no unconditional model to guide with
        if self.parameterisation.kind != "epsilon":
            # the graph converts it to eps (prediction_type), so readers of the format need not know it
            training["network_prediction"] = self.parameterisation.to_dict()
        fitted, student = (), None
        if self.distill is not None:
            d = self.distill
            # the student's sampler and call times, so that ddpm-run samples with them by default
            fitted = tuple(
                FittedTimesteps(
                    sampler=d.sampler, timesteps=tuple(times), fit={"distilled": True}, options=d.sampler_options
                )
                for _, times in sorted(d.timesteps.items())
            )
            student = StudentSampling(
                sampler=d.sampler, calls=d.config.calls, options=d.sampler_options, guided=self.classes is not None
            )
            training["distilled"] = {
                "calls": d.config.calls,
                "teacher_calls": d.config.teacher_calls,
                "teacher_steps": d.teacher_steps,
                "target": d.config.target,
            }
            if self.classes is not None:
                training["distilled"]["guidance_scale"] = d.config.guidance_scale
        default = default_sampling(self.parameterisation.kind, student)
        if self.distill is not None:
            default["teacher_steps"] = self.distill.teacher_steps
        return ModelMetadata(
            image=ImageSpec(cfg.im_channels, cfg.image_size, cfg.image_size),
            schedule=self.schedule,
            prediction_type="epsilon",
            model_config=cfg.to_dict(),
            training={
                "steps": self.step,
                "ema": self.weights == "ema",
                "checkpoint_sha256": self.checkpoint_sha256,
                "data_fingerprint": self.data_fingerprint,
                **training,
            },
            exporter={"torch": str(torch.__version__), "ddpm_export": __version__, **exporter},
            classes=classes,
            fitted=fitted,
            default_sampling=default,
        )


def load_source(path: str | Path, weights: str = "ema") -> ExportSource:
    path = Path(path)
    if weights not in WEIGHTS:
        raise ExportError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    checkpoint = load_checkpoint(path)  # TrainingError (a UserError) for missing, corrupt, unknown version
    model_config, schedule = checkpoint_configs(path, checkpoint)
    model = Unet(model_config)
    try:
        model.load_state_dict(checkpoint["ema" if weights == "ema" else "model"])
    except RuntimeError as exc:
        raise ExportError(f"{path}: weights do not fit the checkpoint's model config ({str(exc)[:120]})") from None
    model.eval().requires_grad_(False)
    try:
        parameterisation = TrainConfig.from_dict(checkpoint.get("train_config", {})).parameterisation
    except TrainingError as exc:
        raise ExportError(f"{path}: {exc}") from None
    model = eps_network(model, parameterisation, NoiseSchedule.from_config(schedule).alpha_bars)
    classes = ClassConditioning.from_checkpoint(checkpoint, str(path))
    if (classes.num_classes if classes else 0) != model_config.num_classes:
        raise ExportError(
            f"{path}: the checkpoint's classes ({classes}) do not fit its model's {model_config.num_classes} classes"
        )
    return ExportSource(
        path=path,
        model=model,
        model_config=model_config,
        schedule=schedule,
        weights=weights,
        step=int(checkpoint["step"]),
        checkpoint_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        data_fingerprint=checkpoint.get("data", {}).get("fingerprint"),
        classes=classes,
        parameterisation=parameterisation,
        distill=student_record(checkpoint, path),
    )


def example_inputs(source: ExportSource, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs to trace the model with, in ``contract.input_names`` order: zeros x, distinct t per row and,
    for a conditional model, a class and the "no class" label (the batch axis stays dynamic)."""
    cfg = source.model_config
    x = torch.zeros(batch, cfg.im_channels, cfg.image_size, cfg.image_size)
    t = torch.arange(batch, dtype=torch.float32)
    if not source.conditional:
        return x, t
    y = torch.tensor([i % (cfg.num_classes + 1) for i in range(batch)], dtype=torch.int64)
    y[-1] = cfg.null_class
    return x, t, y


def torch_eps_fn(model: torch.nn.Module):
    from ddpm_training.diffusion.torch_eps import numpy_eps_model

    return numpy_eps_model(model, "cpu")
