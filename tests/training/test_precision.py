"""--precision: the decision with injected capabilities and timings (never timed here), and how
``ddpm train`` records, reports and keeps it."""

from __future__ import annotations

import json

import pytest
import torch

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training import precision as precision_module
from ddpm_training.checkpoint import load_checkpoint
from ddpm_training.config import preset
from ddpm_training.diffusion import ForwardProcess
from ddpm_training.errors import TrainingError
from ddpm_training.precision import Capabilities, choose_precision, detect_capabilities, step_timer

from cli_helpers import error_lines, run_ddpm

AVX2 = Capabilities("cpu", False, "CPU ISA AVX2, bf16 instructions: no")
AVX512_BF16 = Capabilities("cpu", True, "CPU ISA AVX512, bf16 instructions: yes")
TINY = ["--preset", "tiny", "--batch-size", "8", "--num-preview", "2", "--preview-steps", "2"]


def must_not_time():
    raise AssertionError("the steps were timed where the decision needs no timing")


def fixed(fp32_s, bf16_s):
    calls = []

    def timer():
        calls.append(1)
        return fp32_s, bf16_s

    return timer, calls


@pytest.mark.parametrize("capabilities", [AVX2, AVX512_BF16, Capabilities("cuda", True, "GPU")])
@pytest.mark.parametrize("requested", ["fp32", "bf16"])
def test_an_explicit_precision_is_taken_as_asked_and_never_timed(requested, capabilities):
    choice = choose_precision(requested, capabilities, must_not_time)
    assert (choice.name, choice.requested, choice.fp32_s) == (requested, requested, None)


def test_auto_without_bf16_hardware_is_fp32_without_timing():
    choice = choose_precision("auto", AVX2, must_not_time)
    assert choice.name == "fp32" and "emulated" in choice.reason and "AVX2" in choice.reason


@pytest.mark.parametrize(
    ("fp32_s", "bf16_s", "expected"),
    [
        (0.67, 0.50, "bf16"),  # the fast preset on the AVX-512-BF16 CPU (BENCHMARKS.md): 1.34x
        (1.27, 14.35, "fp32"),  # emulated bf16 on an AVX2 CPU that still reports bf16: 11x slower
        (1.00, 0.97, "fp32"),  # 1.03x: inside timing noise, not worth bf16's rounding
        (1.06, 1.00, "bf16"),  # just above the 1.05x threshold
    ],
)
def test_auto_on_a_bf16_cpu_takes_the_measured_faster(fp32_s, bf16_s, expected):
    timer, calls = fixed(fp32_s, bf16_s)
    choice = choose_precision("auto", AVX512_BF16, timer)
    assert choice.name == expected and calls == [1]
    assert (choice.fp32_s, choice.bf16_s) == (fp32_s, bf16_s)
    assert f"{fp32_s:.3f} s/step in fp32" in choice.reason


def test_auto_on_cuda_follows_the_gpus_bf16_support():
    assert choose_precision("auto", Capabilities("cuda", True, "H100, bf16: yes"), must_not_time).name == "bf16"
    assert choose_precision("auto", Capabilities("cuda", False, "T4, bf16: no"), must_not_time).name == "fp32"


def test_unknown_precision_is_refused():
    with pytest.raises(TrainingError, match="--precision must be one of auto, fp32, bf16"):
        choose_precision("fp16", AVX2)


def test_cpu_capabilities_are_torchs_own():
    capabilities = detect_capabilities(torch.device("cpu"))
    assert capabilities.device_type == "cpu"
    assert capabilities.bf16 == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert torch.backends.cpu.get_cpu_capability() in capabilities.description


def test_the_timer_times_both_precisions_and_leaves_the_global_rng_alone():
    config = preset("tiny").with_image(1, 12)
    forward = ForwardProcess(NoiseSchedule.from_config(ScheduleConfig()))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    fp32_s, bf16_s = step_timer(config, forward, 4, torch.device("cpu"), rounds=1)()
    assert fp32_s > 0 and bf16_s > 0
    assert torch.equal(torch.get_rng_state(), state)  # a run's weights and noise do not depend on the timing


def run_with(monkeypatch, capabilities, fp32_s, bf16_s):
    timer, calls = fixed(fp32_s, bf16_s)
    monkeypatch.setattr("ddpm_training.run.detect_capabilities", lambda device: capabilities)
    monkeypatch.setattr("ddpm_training.run.step_timer", lambda *args, **kwargs: timer)
    return calls


def test_auto_records_reports_and_keeps_its_choice(capsys, monkeypatch, idx_dir, tmp_path):
    calls = run_with(monkeypatch, AVX512_BF16, 0.9, 0.5)
    out = tmp_path / "run"
    result = run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "2")
    assert result.code == 0, result.err
    assert calls == [1]
    assert "precision: bf16 (auto: measured 0.900 s/step in fp32, 0.500 in bf16 (1.80x)" in result.err
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["train_config"]["bf16"] is True
    assert ckpt["precision"] == json.loads((out / "config.json").read_text())["precision"]
    assert (ckpt["precision"]["fp32_s"], ckpt["precision"]["bf16_s"]) == (0.9, 0.5)

    # A resume keeps the recorded choice without timing again, on any machine: it is part of the maths.
    run_with(monkeypatch, AVX2, 0.1, 9.9)
    resumed = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "3")
    assert resumed.code == 0, resumed.err
    assert "precision: bf16, kept from the resumed checkpoint (auto: measured 0.900" in resumed.err
    assert load_checkpoint(out / "checkpoint.pt")["precision"]["bf16_s"] == 0.5
    # An explicit other precision on resume is refused, and the checkpoint stays as it was.
    before = (out / "checkpoint.pt").read_bytes()
    refused = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--precision", "fp32")
    assert refused.code == 2 and "bf16 True -> False" in error_lines(refused)[0]
    assert (out / "checkpoint.pt").read_bytes() == before


def test_auto_that_times_and_picks_fp32_trains_exactly_as_explicit_fp32(capsys, monkeypatch, idx_dir, tmp_path):
    """The timing runs real steps of a throwaway model: it must not change the run's weights or noise."""
    monkeypatch.setattr("ddpm_training.run.detect_capabilities", lambda device: AVX512_BF16)
    monkeypatch.setattr(precision_module, "BF16_MIN_SPEEDUP", 1e9)  # the real timer runs; fp32 wins
    assert run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "auto", *TINY, "--max-steps", "3").code == 0
    auto = load_checkpoint(tmp_path / "auto" / "checkpoint.pt")
    assert auto["precision"]["requested"] == "auto" and auto["precision"]["fp32_s"] > 0
    explicit_run = run_ddpm(
        capsys, "train", idx_dir, "--out", tmp_path / "fp32", *TINY, "--max-steps", "3", "--no-bf16"
    )
    assert explicit_run.code == 0
    explicit = load_checkpoint(tmp_path / "fp32" / "checkpoint.pt")
    assert explicit["precision"]["requested"] == "fp32"
    for part in ("model", "ema"):
        for name in auto[part]:
            assert torch.equal(auto[part][name], explicit[part][name]), f"{part}.{name}"


def test_contradicting_spellings_are_refused(capsys, idx_dir, tmp_path):
    result = run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "r", "--precision", "fp32", "--bf16")
    assert result.code == 2 and "--bf16 contradicts --precision fp32" in error_lines(result)[0]
    assert not (tmp_path / "r").exists()
