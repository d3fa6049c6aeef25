"""--precision and --memory-format: the decision with injected capabilities and timings (never timed
here), and how ``ddpm train`` records, reports and keeps it."""

from __future__ import annotations

import json

import pytest
import torch

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training.diffusion.forward import ForwardProcess
from ddpm_training.errors import TrainingError
from ddpm_training.model.config import UNetConfig, preset
from ddpm_training.model.unet import Unet
from ddpm_training.train import compute as compute_module
from ddpm_training.train.checkpoint import load_checkpoint
from ddpm_training.train.compute import Capabilities, choose_compute, detect_capabilities, step_timer, variant_name

from cli_helpers import error_lines, run_ddpm

AVX2 = Capabilities("cpu", False, "CPU ISA AVX2, bf16 instructions: no")
AVX512_BF16 = Capabilities("cpu", True, "CPU ISA AVX512, bf16 instructions: yes")
TINY = ["--preset", "tiny", "--batch-size", "8", "--num-preview", "2", "--preview-steps", "2", "--log-every", "2"]


def must_not_time(variants):
    raise AssertionError(f"timed {variants} where the decision needs no timing")


def fixed(**seconds):
    """A timer that reports the given s/step by variant name (fp32_contiguous=..., bf16_channels_last=...)."""
    calls = []

    def timer(variants):
        calls.append(list(variants))
        return {v: seconds[variant_name(*v).replace(" ", "_")] for v in variants}

    return timer, calls


@pytest.mark.parametrize("capabilities", [AVX2, AVX512_BF16, Capabilities("cuda", True, "GPU")])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_explicit_settings_are_taken_as_asked_and_never_timed(precision, layout, capabilities):
    choice = choose_compute(precision, layout, capabilities, must_not_time)
    assert choice.name == f"{precision} {layout}" and (choice.precision, choice.layout) == (precision, layout)
    assert choice.seconds == {}


def test_auto_without_bf16_hardware_is_fp32_and_times_only_the_layouts():
    timer, calls = fixed(fp32_contiguous=1.04, fp32_channels_last=1.10)  # channels_last slower, as on a real AVX2 CPU
    choice = choose_compute("auto", "auto", AVX2, timer)
    assert calls == [[(False, False), (False, True)]]
    assert choice.name == "fp32 contiguous" and "emulated" in choice.reason and "AVX2" in choice.reason
    assert choose_compute("auto", "channels_last", AVX2, must_not_time).name == "fp32 channels_last"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        # as the fast preset measured on an AVX-512-BF16 CPU: bf16 faster, channels_last faster in both
        ({"fp32": 0.551, "bf16": 0.391, "fp32_cl": 0.449, "bf16_cl": 0.363}, "bf16 channels_last"),
        # emulated bf16 on a CPU that still reports bf16: far slower
        ({"fp32": 1.27, "bf16": 14.35, "fp32_cl": 1.30, "bf16_cl": 14.0}, "fp32 contiguous"),
        # bf16 1.03x: inside timing noise, not worth bf16's rounding; the layout is taken when faster at all
        ({"fp32": 1.00, "bf16": 0.99, "fp32_cl": 0.97, "bf16_cl": 0.98}, "fp32 channels_last"),
        ({"fp32": 1.06, "bf16": 1.00, "fp32_cl": 1.07, "bf16_cl": 1.01}, "bf16 contiguous"),  # just over 1.05x
    ],
)
def test_auto_on_a_bf16_cpu_takes_the_measured_fastest(seconds, expected):
    timer, calls = fixed(
        fp32_contiguous=seconds["fp32"],
        bf16_contiguous=seconds["bf16"],
        fp32_channels_last=seconds["fp32_cl"],
        bf16_channels_last=seconds["bf16_cl"],
    )
    choice = choose_compute("auto", "auto", AVX512_BF16, timer)
    assert choice.name == expected and len(calls) == 1 and len(calls[0]) == 4
    assert choice.seconds["fp32 contiguous"] == seconds["fp32"]
    assert f"fp32 contiguous {seconds['fp32']:.3f}" in choice.reason


def test_auto_precision_with_a_fixed_layout_times_two_variants():
    timer, calls = fixed(fp32_contiguous=0.9, bf16_contiguous=0.5)
    assert choose_compute("auto", "contiguous", AVX512_BF16, timer).name == "bf16 contiguous"
    assert calls == [[(False, False), (True, False)]]


def test_auto_on_cuda_follows_the_gpus_bf16_support():
    gpu, old_gpu = Capabilities("cuda", True, "H100, bf16: yes"), Capabilities("cuda", False, "T4, bf16: no")
    assert choose_compute("auto", "contiguous", gpu, must_not_time).name == "bf16 contiguous"
    assert choose_compute("auto", "contiguous", old_gpu, must_not_time).name == "fp32 contiguous"


def test_unknown_settings_are_refused():
    with pytest.raises(TrainingError, match="--precision must be one of auto, fp32, bf16"):
        choose_compute("fp16", "auto", AVX2)
    with pytest.raises(TrainingError, match="--memory-format must be one of"):
        choose_compute("auto", "nhwc", AVX2)


def test_cpu_capabilities_are_torchs_own():
    capabilities = detect_capabilities(torch.device("cpu"))
    assert capabilities.device_type == "cpu"
    assert capabilities.bf16 == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert torch.backends.cpu.get_cpu_capability() in capabilities.description


def test_the_timer_times_every_variant_and_leaves_the_global_rng_alone():
    config = preset("tiny").with_image(1, 12)
    forward = ForwardProcess(NoiseSchedule.from_config(ScheduleConfig()))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    variants = [(False, False), (True, True)]
    seconds = step_timer(config, forward, 4, torch.device("cpu"), rounds=1)(variants)
    assert set(seconds) == set(variants) and all(s > 0 for s in seconds.values())
    assert torch.equal(torch.get_rng_state(), state)  # a run's weights and noise do not depend on the timing


def run_with(monkeypatch, capabilities, **seconds):
    timer, calls = fixed(**seconds)
    monkeypatch.setattr("ddpm_training.train.session.detect_capabilities", lambda device: capabilities)
    monkeypatch.setattr("ddpm_training.train.session.step_timer", lambda *args, **kwargs: timer)
    return calls


def test_auto_records_reports_and_keeps_its_choice(capsys, monkeypatch, idx_dir, tmp_path):
    measured = {"fp32_contiguous": 0.9, "bf16_contiguous": 0.5, "fp32_channels_last": 0.8, "bf16_channels_last": 0.6}
    calls = run_with(monkeypatch, AVX512_BF16, **measured)
    out = tmp_path / "run"
    result = run_ddpm(capsys, "train", idx_dir, "--out", out, *TINY, "--max-steps", "2")
    assert result.code == 0, result.err
    assert len(calls) == 1
    assert "compute: bf16 contiguous (--precision auto --memory-format auto: measured s/step fp32 contiguous 0.900" in (
        result.err
    )
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["train_config"]["bf16"] is True and ckpt["train_config"]["channels_last"] is False
    assert ckpt["compute"] == json.loads((out / "config.json").read_text())["compute"]
    assert ckpt["compute"]["seconds"]["bf16 contiguous"] == 0.5

    # A resume keeps the recorded choice without timing again, on any machine: it goes on bit for bit.
    calls = run_with(monkeypatch, AVX2, **measured)
    resumed = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--max-steps", "3")
    assert resumed.code == 0, resumed.err
    assert calls == []
    assert "compute: bf16 contiguous, kept from the resumed checkpoint (--precision auto" in resumed.err
    assert load_checkpoint(out / "checkpoint.pt")["compute"]["seconds"]["bf16 contiguous"] == 0.5
    # An explicit other precision on resume is refused (it is part of the maths), the checkpoint untouched.
    before = (out / "checkpoint.pt").read_bytes()
    refused = run_ddpm(capsys, "train", idx_dir, "--resume", out / "checkpoint.pt", "--precision", "fp32")
    assert refused.code == 2 and "bf16 True -> False" in error_lines(refused)[0]
    assert (out / "checkpoint.pt").read_bytes() == before
    # Another layout may be asked for (it changes no maths), and is recorded.
    relaid = run_ddpm(
        capsys,
        "train",
        idx_dir,
        "--resume",
        out / "checkpoint.pt",
        "--max-steps",
        "4",
        "--memory-format",
        "channels_last",
    )
    assert relaid.code == 0, relaid.err
    assert load_checkpoint(out / "checkpoint.pt")["train_config"]["channels_last"] is True


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_auto_that_times_trains_exactly_as_its_choice_asked_for(capsys, monkeypatch, idx_dir, tmp_path, layout):
    """The timing runs real steps of a throwaway model: it must not change the run's weights or noise."""
    monkeypatch.setattr("ddpm_training.train.session.detect_capabilities", lambda device: AVX512_BF16)
    monkeypatch.setattr(compute_module, "BF16_MIN_SPEEDUP", 1e9)  # the real timer runs; fp32 wins
    args = [*TINY, "--max-steps", "3", "--memory-format", layout]
    assert run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "auto", *args).code == 0
    auto = load_checkpoint(tmp_path / "auto" / "checkpoint.pt")
    assert auto["compute"]["precision"] == "auto" and auto["compute"]["seconds"]["fp32 " + layout] > 0
    assert run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "fp32", *args, "--no-bf16").code == 0
    explicit = load_checkpoint(tmp_path / "fp32" / "checkpoint.pt")
    assert explicit["compute"]["precision"] == "fp32" and explicit["compute"]["seconds"] == {}
    for part in ("model", "ema"):
        for name in auto[part]:
            assert torch.equal(auto[part][name], explicit[part][name]), f"{part}.{name}"


def test_channels_last_trains_the_same_function(capsys, idx_dir, tmp_path):
    """The layout changes only the order of float operations: after 3 steps the two runs' models agree
    to float rounding (Adam amplifies rounding in exactly-zero-gradient directions, so outputs are compared)."""
    for layout in ("contiguous", "channels_last"):
        args = [*TINY, "--max-steps", "3", "--precision", "fp32", "--memory-format", layout]
        assert run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / layout, *args).code == 0
    outputs, losses = [], []
    for layout in ("contiguous", "channels_last"):
        ckpt = load_checkpoint(tmp_path / layout / "checkpoint.pt")
        model = Unet(UNetConfig.from_dict(ckpt["model_config"])).eval()
        model.load_state_dict(ckpt["model"])
        x = torch.randn(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            outputs.append(model(x, torch.tensor([0, 10, 500, 999])))
        losses.append([r["loss"] for r in ckpt["history"]])
        assert ckpt["train_config"]["channels_last"] is (layout == "channels_last")
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_contradicting_spellings_are_refused(capsys, idx_dir, tmp_path):
    result = run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "r", "--precision", "fp32", "--bf16")
    assert result.code == 2 and "--bf16 contradicts --precision fp32" in error_lines(result)[0]
    assert not (tmp_path / "r").exists()
