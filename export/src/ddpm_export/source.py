"""What an export starts from: a checkpoint's config, schedule and chosen weights, as an eval-mode Unet."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddpm_runtime.metadata import ClassSpec, FittedTimesteps, ImageSpec, ModelMetadata
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training.checkpoint import checkpoint_configs, load_checkpoint
from ddpm_training.classes import ClassConditioning
from ddpm_training.config import UNetConfig
from ddpm_training.errors import TrainingError
from ddpm_training.prediction import Parameterisation, eps_network
from ddpm_training.train_config import TrainConfig
from ddpm_training.unet import Unet

from . import __version__
from .errors import ExportError

# ddpm-run's sampler for a model whose network predicts v, unless --sampler is given: measured on
# three v models, 20 calls, against dpm-solver++-sde: FID 23.0 / 9.3 / 6.1 against 26.4 / 13.3 / 10.3 (after
# 700, 1,670 and 2,201 steps); on an epsilon model the same solver gave 60.8 against 15.6, so those keep the SDE.
SOLVER_FOR_X0_NETWORKS = {"sampler": "dpm-solver++", "steps": 20}
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
    distill: dict | None = None  # a distilled student's "distill" entry (ddpm distill): its sampler and times

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
        fitted, default = (), None
        if self.distill is not None:
            # the student's sampler and call times, so that ddpm-run samples with them by default
            d = self.distill
            fitted = tuple(
                FittedTimesteps(d["sampler"], tuple(times), {"distilled": True}, dict(d.get("sampler_options") or {}))
                for _, times in sorted(d["timesteps"].items(), key=lambda item: int(item[0]))
            )
            default = {"sampler": d["sampler"], "steps": d["calls"], "teacher_steps": d["teacher"]["step"]}
            if d.get("sampler_options"):
                default["options"] = dict(d["sampler_options"])  # e.g. a segment student's DDIM, x_0 unclipped
            training["distilled"] = {
                "calls": d["calls"],
                "teacher_calls": d["teacher_calls"],
                "teacher_steps": d["teacher"]["step"],
                "target": d.get("target", "end"),
            }
            if self.classes is not None:
                # its guidance is inside: ddpm-run adds none unless asked (--guidance-scale)
                default["guidance_scale"] = 0.0
                training["distilled"]["guidance_scale"] = d.get("guidance_scale", 0.0)
        elif self.parameterisation.kind == "v":
            # a v network's x_0 estimates at high noise are good, and there the deterministic solver beats
            # the stochastic default (BENCHMARKS.md, "Four model calls"); edm is not measured yet
            default = dict(SOLVER_FOR_X0_NETWORKS)
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
        distill=checkpoint.get("distill"),
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
    from ddpm_training.torch_eps import numpy_eps_model

    return numpy_eps_model(model, "cpu")
