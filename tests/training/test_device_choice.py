"""--device and --deterministic: what a CUDA run switches on, checked without a GPU (CI has none).

Without deterministic kernels a resumed CUDA run is not bit-exact (docs/benchmarks/gpu.md). Here:
that a CUDA choice switches them on, and that --no-deterministic reaches the device choice of both
commands.
"""

from __future__ import annotations

import os

import pytest
import torch

from ddpm_training.distill import run as distill_run
from ddpm_training.train import distributed
from ddpm_training.train.distributed import DistInfo, choose_device, deterministic_cuda

from cli_helpers import run_ddpm


@pytest.fixture
def restore_determinism(monkeypatch):
    """deterministic_cuda sets process-wide flags; put them back after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_deterministic_cuda_sets_cublas_cudnn_and_torch(restore_determinism):
    torch.backends.cudnn.benchmark = True
    deterministic_cuda()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    # Strict, not warn-only: only then do SDPA's flash and memory-efficient backwards run their
    # deterministic variants; warn-only leaves them racing.
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()


def test_a_user_workspace_setting_is_kept(restore_determinism, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    deterministic_cuda()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_cuda_choice_switches_determinism_on_unless_declined(monkeypatch, deterministic):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(distributed, "deterministic_cuda", lambda: calls.append("on"))
    assert choose_device("auto", DistInfo(local_rank=3), deterministic) == torch.device("cuda", 1)
    assert calls == (["on"] if deterministic else [])
    assert choose_device("cpu", DistInfo(), deterministic) == torch.device("cpu")
    assert len(calls) == (1 if deterministic else 0)  # a CPU run changes nothing


def test_no_cuda_is_a_one_line_error(capsys, idx_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_ddpm(capsys, "train", idx_dir, "--device", "cuda", "--out", tmp_path / "r", "--max-steps", "1")
    assert result.code == 2 and "no CUDA device" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "r").exists()


class Reached(Exception):
    pass


@pytest.mark.parametrize("flag", [None, "--deterministic", "--no-deterministic"])
def test_the_flag_reaches_the_device_choice_of_train_and_distill(capsys, idx_dir, tmp_path, monkeypatch, flag):
    seen = []

    def record(name, info=None, deterministic=True):
        seen.append(deterministic)
        raise Reached

    monkeypatch.setattr(distributed, "choose_device", record)
    monkeypatch.setattr(distill_run, "choose_device", record)
    extra = [] if flag is None else [flag]
    (tmp_path / "teacher.pt").write_bytes(b"not reached")
    with pytest.raises(Reached):
        run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "t", *extra)
    with pytest.raises(Reached):
        run_ddpm(capsys, "distill", tmp_path / "teacher.pt", "--out", tmp_path / "s", *extra)
    assert seen == [flag != "--no-deterministic"] * 2
