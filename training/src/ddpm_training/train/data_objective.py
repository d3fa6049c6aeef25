"""Denoising the training images: the DDPM objective as a Trainer's ``Objective``.

The data order of epoch e is a permutation drawn from (seed, e); timesteps and noise come from the
Trainer's generator. Every process draws the *global* batch's timesteps and noise and keeps its own
slice, so K processes with batch B train on the same numbers as one process with batch B (up to the
order of float additions in the gradient all-reduce).
"""

from __future__ import annotations

import numpy as np
import torch

from ddpm_runtime.default_sampling import default_sampling
from ddpm_runtime.images import to_model_range
from ddpm_runtime.schedule import NoiseSchedule

from ..data import ImageData
from ..data.classes import ClassConditioning
from ..diffusion.forward import ForwardProcess
from ..diffusion.objective import NoiseLevels, diffusion_loss
from ..errors import TrainingError
from ..model.config import UNetConfig
from .config import TrainConfig
from .distributed import DistInfo
from .trainer import PreviewSampling, Trainer


class DataObjective:
    def __init__(
        self,
        data: ImageData,
        model_config: UNetConfig,
        schedule: NoiseSchedule,
        train_config: TrainConfig,
        *,
        device: torch.device | str = "cpu",
        dist_info: DistInfo | None = None,
        classes: ClassConditioning | None = None,
    ):
        self.model_config, self.config = model_config, train_config
        self.device = torch.device(device)
        self.dist = dist_info = dist_info or DistInfo()
        self.classes = check_classes(model_config, data, classes)
        if (data.channels, data.image_size) != (model_config.im_channels, model_config.image_size):
            raise TrainingError(
                f"{data.source}: images are {data.channels}x{data.image_size}x{data.image_size} but the model expects "
                f"{model_config.im_channels}x{model_config.image_size}x{model_config.image_size}"
            )
        if data.num_images < train_config.batch_size:
            raise TrainingError(
                f"{data.source}: {data.num_images} images are fewer than one batch of {train_config.batch_size}"
            )
        self.data_info = {
            "fingerprint": data.fingerprint,
            "num_images": data.num_images,
            "channels": data.channels,
            "image_size": data.image_size,
            "source": data.source,
        }
        # Every batch is full: the last partial batch of an epoch is dropped (it is reshuffled into the next).
        self.steps_per_epoch = data.num_images // train_config.batch_size
        self.local_batch = train_config.batch_size // dist_info.world_size
        self.memory_format = torch.channels_last if train_config.channels_last else torch.contiguous_format
        self.forward_process = ForwardProcess(schedule, self.device)
        self.noise_levels = NoiseLevels(
            train_config.noise_levels, self.forward_process, train_config.p_mean, train_config.p_std
        )
        self.parameterisation = train_config.parameterisation
        self.images = torch.tensor(data.images, device=self.device)  # (N, H, W, C) uint8, decoded once
        self.labels = torch.tensor(data.labels, device=self.device) if self.classes else None  # (N,) int64
        self._epoch_cache: tuple[int, torch.Tensor] | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.images))
            self._epoch_cache = (epoch, torch.from_numpy(order).to(self.device))
        return self._epoch_cache[1]

    def batch(self, step: int, generator: torch.Generator):
        """This process's (x0, noise, t, y) for ``step``; draws the global batch's t and noise (and, for a
        conditional model, which labels become "no class") from ``generator``. y is None when unconditional."""
        batch_size, local = self.config.batch_size, self.local_batch
        epoch, position = divmod(step, self.steps_per_epoch)
        indices = self.permutation(epoch)[position * batch_size : (position + 1) * batch_size]
        rows = slice(self.dist.rank * local, (self.dist.rank + 1) * local)
        shape = (batch_size, self.model_config.im_channels, self.model_config.image_size, self.model_config.image_size)
        t = self.noise_levels.draw(batch_size, generator)
        noise = torch.randn(shape, generator=generator)
        x0 = to_model_range(self.images[indices[rows]].permute(0, 3, 1, 2).float())  # (b, C, H, W) in [-1, 1]
        x0 = x0.contiguous(memory_format=self.memory_format)
        y = None
        if self.labels is not None:
            # Drawn after t and noise, and only here: an unconditional run's random numbers are untouched.
            dropped = torch.rand((batch_size,), generator=generator) < self.classes.label_dropout
            y = torch.where(dropped[rows].to(self.device), self.model_config.null_class, self.labels[indices[rows]])
        noise = noise[rows].to(self.device).contiguous(memory_format=self.memory_format)
        return x0, noise, t[rows].to(self.device), y

    def loss(self, network: torch.nn.Module, step: int, generator: torch.Generator) -> torch.Tensor:
        x0, noise, t, y = self.batch(step, generator)
        cfg = self.config
        return diffusion_loss(
            network,
            self.forward_process,
            x0,
            noise,
            t,
            self.parameterisation,
            cfg.loss_weighting,
            cfg.min_snr_gamma,
            y,
        )

    def describe(self, parameters: int) -> str:
        return (
            f"training {parameters:,} parameters on {self.data_info['num_images']:,} images "
            f"({self.device}, {self.dist.world_size} process(es))"
        )

    def preview(self) -> PreviewSampling:
        return PreviewSampling(default_sampling(self.parameterisation.kind))

    def state_dict(self) -> dict:
        return {}

    def check_resume(self, checkpoint: dict, source: str) -> list[str]:
        if "distill" in checkpoint:
            return ["it is a `ddpm distill` run (resume it with ddpm distill --resume)"]
        return []

    def load_state_dict(self, checkpoint: dict, source: str) -> None:
        pass


def data_trainer(
    model_config: UNetConfig,
    schedule_config,
    train_config: TrainConfig,
    data: ImageData,
    *,
    device: torch.device | str = "cpu",
    dist_info: DistInfo | None = None,
    classes: ClassConditioning | None = None,
) -> Trainer:
    """A Trainer that learns to denoise ``data`` (``ddpm train``)."""
    objective = DataObjective(
        data,
        model_config,
        NoiseSchedule.from_config(schedule_config),
        train_config,
        device=device,
        dist_info=dist_info,
        classes=classes,
    )
    return Trainer(
        model_config,
        schedule_config,
        train_config,
        objective,
        device=device,
        dist_info=dist_info,
        classes=objective.classes,
    )


def check_classes(model_config: UNetConfig, data: ImageData, classes) -> ClassConditioning | None:
    if not model_config.num_classes:
        if classes is not None:
            raise TrainingError("class conditioning was given for an unconditional model")
        return None
    if classes is None or classes.num_classes != model_config.num_classes:
        raise TrainingError(f"a model with {model_config.num_classes} classes needs as many class names, got {classes}")
    if data.labels is None:
        raise TrainingError(f"{data.source}: a class-conditional model needs labels, and this data has none")
    if data.labels.size and (data.labels.min() < 0 or data.labels.max() >= model_config.num_classes):
        raise TrainingError(
            f"{data.source}: labels must lie in 0..{model_config.num_classes - 1} (the model's classes), "
            f"found {int(data.labels.min())}..{int(data.labels.max())}"
        )
    return classes
