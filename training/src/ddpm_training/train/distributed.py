"""torchrun support: read the process group from the environment torchrun sets."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ddpm_runtime.devices import DEVICES

from ..errors import TrainingError
from .process_exit import mark_joined


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def choose_device(name: str, info: DistInfo, deterministic: bool = True) -> torch.device:
    if name not in DEVICES:
        raise TrainingError(f"unknown --device {name!r} (choose {', '.join(DEVICES)})")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda: no CUDA device is available to PyTorch")
        if deterministic:
            deterministic_cuda()
        return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def deterministic_cuda() -> None:
    """The same bits on every run on a GPU, as on a CPU, so that resume continues exactly: cuBLAS with a
    fixed workspace (read when cuBLAS starts, so this runs before any CUDA work), cuDNN without
    autotuning or non-deterministic kernels, and PyTorch's deterministic ops (attention's backward
    included; an op without one raises rather than silently differ)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)


def init_from_env(device_name: str, deterministic: bool = True) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); a plain run is rank 0 of 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = choose_device(device_name, info, deterministic)
    if info.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        mark_joined()
    return info, device


def finished_together(info: DistInfo) -> None:
    """After a run that ended normally, wait for every rank before the process group is torn down: rank 0
    writes the last checkpoint and previews after the others are done. Not on the error paths, where a
    peer may be gone."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def rank0_error(error: str | None, info: DistInfo) -> str | None:
    """Rank 0's error (None: none) on every process, so that all of them stop with its one line where
    rank 0 alone could not go on (its lock was refused, its disk is full) instead of failing later in
    a collective the others wait in. Every process must call it at the same point."""
    if not info.enabled:
        return error
    message = [error]
    dist.broadcast_object_list(message, src=0)
    return message[0]
