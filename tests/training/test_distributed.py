"""`ddpm train` under torchrun: 2 CPU processes with gloo train the same model as 1 process."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchrun_helpers import failure, torchrun_env

from ddpm_training.model.config import UNetConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import load_checkpoint

from cli_helpers import run_ddpm

ARGS = [
    "--preset",
    "tiny",
    "--batch-size",
    "8",
    "--max-steps",
    "5",
    "--log-every",
    "1",
    "--num-preview",
    "2",
    "--preview-steps",
    "2",
    "--seed",
    "3",
    "--device",
    "cpu",
    "--precision",  # both runs the same: auto could time its way to different ones in two runs
    "fp32",
    "--memory-format",
    "contiguous",
]


def torchrun(data, out, args) -> subprocess.CompletedProcess:
    """`ddpm train` in 2 CPU processes of one thread each."""
    env = torchrun_env()
    module = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    command = [*module, "ddpm_training.cli", "train", str(data), "--out", str(out), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def fast_case(tmp_path):
    """The fast preset on 16x16 images (no attention at 16x16), with the cosine rate rank 0 broadcasts."""
    import numpy as np

    from data_helpers import make_images

    np.save(tmp_path / "discs16.npy", make_images(48, 16))
    args = [*ARGS, "--preset", "fast", "--lr-schedule", "cosine", "--loss-weighting", "min-snr"]
    return tmp_path / "discs16.npy", args, 16


@pytest.mark.slow
@pytest.mark.parametrize("case", ["tiny", "fast", "tiny-conditional"])
def test_two_gloo_processes_match_one_process(capsys, idx_dir, tmp_path, case):
    data, args, size = (idx_dir, ARGS, 12) if case != "fast" else fast_case(tmp_path)
    if case == "tiny-conditional":  # labels dropped from the global batch's draw, then split by rank
        args = [*args, "--class-conditional", "--label-dropout", "0.5"]
    single = tmp_path / "single"
    assert run_ddpm(capsys, "train", data, "--out", single, *args).code == 0

    ddp = tmp_path / "ddp"
    proc = torchrun(data, ddp, args)
    assert proc.returncode == 0, failure(proc)
    # Only rank 0 writes and reports.
    assert proc.stdout.count("stopped at step 5") == 1
    expected = [".ddpm.lock", "checkpoint.pt", "config.json", "loss.csv", "loss.png", "samples"]  # rank 0 alone
    assert sorted(p.name for p in ddp.iterdir()) == expected

    a, b = load_checkpoint(single / "checkpoint.pt"), load_checkpoint(ddp / "checkpoint.pt")
    assert a["step"] == b["step"] == 5
    # Each process draws the global batch's noise and keeps its half, so the runs differ only in the
    # order of float additions when gloo averages gradients. Raw parameters are not compared: some
    # directions have an exactly-zero gradient (attention key biases, which softmax ignores, and in the
    # tiny preset per-channel biases feeding a GroupNorm of one channel per group), and Adam turns the
    # ~1e-10 rounding noise there into steps of size lr. The learned function is what must agree.
    config = UNetConfig.from_dict(a["model_config"])
    models = []
    for ckpt in (a, b):
        model = Unet(config).eval()
        model.load_state_dict(ckpt["model"])
        models.append(model)
    x = torch.randn(6, 1, size, size, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 250, 500, 750, 999])
    inputs = (x, t) if not config.num_classes else (x, t, torch.tensor([0, 1, 2, 9, 10, 5]))  # 10: "no class"
    with torch.no_grad():
        torch.testing.assert_close(models[1](*inputs), models[0](*inputs), rtol=1e-4, atol=1e-5)
    losses_a = [r["loss"] for r in a["history"]]
    losses_b = [r["loss"] for r in b["history"]]
    assert losses_b == pytest.approx(losses_a, rel=1e-5)


@pytest.mark.slow
def test_auto_compute_under_torchrun_follows_rank_0(idx_dir, tmp_path):
    """Every process times the steps and all follow rank 0's timings through a broadcast: a run whose
    ranks decided differently would diverge (or, with bf16 on one rank only, fail)."""
    args = [*ARGS[:-4], "--precision", "auto", "--memory-format", "auto", "--max-steps", "2"]
    proc = torchrun(idx_dir, tmp_path / "ddp", args)
    assert proc.returncode == 0, failure(proc)
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    compute = ckpt["compute"]
    assert (compute["precision"], compute["layout"]) == ("auto", "auto")
    assert (compute["bf16"], compute["channels_last"]) == (
        ckpt["train_config"]["bf16"],
        ckpt["train_config"]["channels_last"],
    )
    assert "fp32 contiguous" in compute["seconds"] and "fp32 channels_last" in compute["seconds"]
    assert proc.stderr.count("compute: ") == 1  # rank 0 reports the choice, once
