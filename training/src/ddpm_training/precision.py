"""The training precision: bf16 autocast only where it is measured faster for this model, batch and device.

Why measure: on a CPU with bf16 instructions (AVX-512-BF16, AMX) bf16 autocast made the `fast`
recipe's step 1.3x faster, while on an AVX2-only CPU oneDNN emulates bf16 and the same step was 11x
slower than fp32 (BENCHMARKS.md, "Precision"). Neither the preset nor the CPU's name tells which
case a machine is; a few timed steps do.

``choose_precision`` is the decision (pure: capabilities and a timer are passed in, so tests inject
them); ``detect_capabilities`` and ``step_timer`` are what ``ddpm train`` passes on a real machine.
The choice is part of the training maths: a resumed run keeps the recorded one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .config import UNetConfig
from .diffusion import ForwardProcess, noise_prediction_loss
from .errors import TrainingError
from .unet import Unet

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"
# bf16 rounds the forward pass; take it only when clearly faster, not on timing noise.
BF16_MIN_SPEEDUP = 1.05
TIMED_ROUNDS = 2  # timed steps per precision, after one warm-up step each; the faster of the rounds counts


@dataclass(frozen=True)
class Capabilities:
    device_type: str  # "cpu" or "cuda"
    bf16: bool  # the hardware has bf16 arithmetic (CPU: oneDNN's check; CUDA: torch.cuda.is_bf16_supported)
    description: str  # for the run's first lines: "CPU, torch ISA AVX512, oneDNN bf16: yes"


@dataclass(frozen=True)
class PrecisionChoice:
    requested: str  # auto, fp32 or bf16
    bf16: bool  # the decision: bf16 autocast on or off
    reason: str  # one line, for people
    fp32_s: float | None = None  # measured seconds per forward + backward step (auto on a bf16-capable CPU)
    bf16_s: float | None = None

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PrecisionChoice:
        return cls(**data)


def choose_precision(
    requested: str, capabilities: Capabilities, timer: Callable[[], tuple[float, float]] | None = None
) -> PrecisionChoice:
    """fp32 or bf16 for ``requested``; ``timer()`` returns (fp32, bf16) seconds per step and is called
    only when ``requested`` is auto on a CPU whose hardware has bf16."""
    if requested not in PRECISIONS:
        raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return PrecisionChoice(requested, requested == "bf16", f"--precision {requested}")
    if not capabilities.bf16:
        return PrecisionChoice("auto", False, f"auto: {capabilities.description}, so bf16 would be emulated; not timed")
    if capabilities.device_type == "cuda":
        return PrecisionChoice("auto", True, f"auto: {capabilities.description}")
    if timer is None:
        raise TrainingError("--precision auto on a CPU needs a step timer")
    fp32_s, bf16_s = timer()
    speedup = fp32_s / bf16_s
    bf16 = speedup >= BF16_MIN_SPEEDUP
    verdict = "bf16 faster" if bf16 else f"bf16 not at least {BF16_MIN_SPEEDUP:g}x faster"
    reason = (
        f"auto: measured {fp32_s:.3f} s/step in fp32, {bf16_s:.3f} in bf16 ({speedup:.2f}x), {verdict}; "
        f"{capabilities.description}"
    )
    return PrecisionChoice("auto", bf16, reason, fp32_s, bf16_s)


def detect_capabilities(device: torch.device) -> Capabilities:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bf16 = bool(torch.cuda.is_bf16_supported())
        return Capabilities("cuda", bf16, f"{name}, bf16: {'yes' if bf16 else 'no'}")
    isa = torch.backends.cpu.get_cpu_capability()
    try:  # oneDNN's own check for native bf16 (avx512_core_bf16 or AMX), honouring ONEDNN_MAX_CPU_ISA
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # no oneDNN in this build: no fast bf16 either
        bf16 = False
    return Capabilities("cpu", bf16, f"CPU ISA {isa}, bf16 instructions: {'yes' if bf16 else 'no'}")


def step_timer(
    model_config: UNetConfig,
    forward: ForwardProcess,
    batch_size: int,
    device: torch.device,
    rounds: int = TIMED_ROUNDS,
) -> Callable[[], tuple[float, float]]:
    """A timer of forward + backward steps of a throwaway copy of the model at this batch size, fp32
    and bf16 alternating (so drift of the machine affects both), each the fastest of ``rounds``.

    It draws its inputs from its own generator and restores torch's global RNG, so a run's initial
    weights and random numbers are the same whether or not the timing ran.
    """

    def timer() -> tuple[float, float]:
        rng_state = torch.get_rng_state()
        try:
            model = Unet(model_config).to(device).train()  # its initialisation draws from the global RNG
        finally:
            torch.set_rng_state(rng_state)
        generator = torch.Generator().manual_seed(0)
        size = model_config.image_size
        x0 = torch.rand((batch_size, model_config.im_channels, size, size), generator=generator) * 2 - 1
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, len(forward.snr), (batch_size,), generator=generator)
        y = None
        if model_config.num_classes:
            y = torch.randint(0, model_config.num_classes + 1, (batch_size,), generator=generator).to(device)
        x0, noise, t = x0.to(device), noise.to(device), t.to(device)

        def one_step(bf16: bool) -> float:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = noise_prediction_loss(model, forward, x0, noise, t, y=y)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

        one_step(False), one_step(True)  # warm-up: kernels, allocator, oneDNN primitives
        timings: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for bf16 in (False, True):
                timings[bf16].append(one_step(bf16))
        return min(timings[False]), min(timings[True])

    return timer
