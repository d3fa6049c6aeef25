"""How the training step computes: precision (fp32 or bf16 autocast) and memory layout, chosen by measurement.

Why measure: on a CPU with bf16 instructions (AVX-512-BF16, AMX) bf16 autocast makes the step faster,
while on an AVX2-only CPU oneDNN emulates bf16 and the same step is many times slower than fp32. The
channels-last layout (NHWC, which oneDNN's convolutions use without reordering) is faster on some CPUs
and slower on others (docs/benchmarks/speed.md, "Precision and layout"). Neither the preset nor the
CPU's name tells which case a machine is; a few timed steps do.

``choose_compute`` is the decision (pure: capabilities and a timer are passed in, so tests inject
them); ``detect_capabilities`` and ``step_timer`` are what ``ddpm train`` passes on a real machine.
The precision is part of the training maths; the layout only changes the order of float operations.
A resumed run keeps both, so that it continues bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from ..diffusion.forward import ForwardProcess
from ..diffusion.objective import diffusion_loss
from ..errors import TrainingError
from ..model.config import UNetConfig
from ..model.unet import Unet

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"
LAYOUTS = ("auto", "contiguous", "channels_last")
DEFAULT_LAYOUT = "auto"
# bf16 rounds the forward pass; take it only when clearly faster, not on timing noise. The layout has
# no such cost, so the faster one is taken.
BF16_MIN_SPEEDUP = 1.05
TIMED_ROUNDS = 2  # timed steps per variant, after one warm-up step each; the fastest round counts

Variant = tuple[bool, bool]  # (bf16, channels_last)
Timer = Callable[[list[Variant]], dict[Variant, float]]


def precision_name(bf16: bool) -> str:
    return "bf16" if bf16 else "fp32"


def layout_name(channels_last: bool) -> str:
    return "channels_last" if channels_last else "contiguous"


def variant_name(bf16: bool, channels_last: bool) -> str:
    return f"{precision_name(bf16)} {layout_name(channels_last)}"


@dataclass(frozen=True)
class Capabilities:
    device_type: str  # "cpu" or "cuda"
    bf16: bool  # the hardware has bf16 arithmetic (CPU: oneDNN's check; CUDA: torch.cuda.is_bf16_supported)
    description: str  # for the run's first lines: "CPU ISA AVX512, bf16 instructions: yes"


@dataclass(frozen=True, kw_only=True)
class ComputeChoice:
    precision: str  # what was asked: auto, fp32 or bf16
    layout: str  # what was asked: auto, contiguous or channels_last
    bf16: bool  # the decisions
    channels_last: bool
    reason: str  # one line, for people
    seconds: dict[str, float] = field(default_factory=dict)  # measured s/step by variant_name, when timed

    @property
    def name(self) -> str:
        return variant_name(self.bf16, self.channels_last)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ComputeChoice:
        return cls(**data)


def choose_compute(
    precision: str, layout: str, capabilities: Capabilities, timer: Timer | None = None
) -> ComputeChoice:
    """bf16 or not, channels-last or not, for what was asked. ``timer(variants)`` returns seconds per
    step for each (bf16, channels_last) and is called only when more than one variant is left: bf16 is
    timed only on a CPU with bf16 hardware (elsewhere it is emulated, or on CUDA simply taken where
    supported), and the layout whenever it is auto."""
    if precision not in PRECISIONS:
        raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if layout not in LAYOUTS:
        raise TrainingError(f"--memory-format must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    notes = []
    if precision != "auto":
        precisions = [precision == "bf16"]
    elif not capabilities.bf16:
        precisions = [False]
        notes.append("bf16 would be emulated here, not timed")
    elif capabilities.device_type == "cuda":
        precisions = [True]
        notes.append("bf16 where the GPU supports it")
    else:
        precisions = [False, True]
    layouts = [False, True] if layout == "auto" else [layout == "channels_last"]
    variants = [(bf16, cl) for bf16 in precisions for cl in layouts]
    asked = f"--precision {precision} --memory-format {layout}"
    if len(variants) == 1:
        reason = "; ".join([asked, *notes, capabilities.description])
        bf16, channels_last = variants[0]
        return ComputeChoice(precision=precision, layout=layout, bf16=bf16, channels_last=channels_last, reason=reason)
    if timer is None:
        raise TrainingError(f"{asked} needs a step timer")
    seconds = timer(variants)

    def best(bf16: bool) -> Variant:
        return min((v for v in variants if v[0] == bf16), key=seconds.__getitem__)

    chosen = best(precisions[0])
    if len(precisions) == 2:
        fp32, bf16 = best(False), best(True)
        speedup = seconds[fp32] / seconds[bf16]
        chosen = bf16 if speedup >= BF16_MIN_SPEEDUP else fp32
        notes.append(
            f"bf16 {speedup:.2f}x " + ("faster" if chosen[0] else f"is under the {BF16_MIN_SPEEDUP:g}x bf16 needs")
        )
    measured = ", ".join(f"{variant_name(*v)} {seconds[v]:.3f}" for v in variants)
    reason = "; ".join([f"{asked}: measured s/step {measured}", *notes, capabilities.description])
    return ComputeChoice(
        precision=precision,
        layout=layout,
        bf16=chosen[0],
        channels_last=chosen[1],
        reason=reason,
        seconds={variant_name(*v): seconds[v] for v in variants},
    )


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
) -> Timer:
    """A timer of forward + backward steps of a throwaway copy of the model at this batch size. The
    variants alternate within each round (so drift of the machine affects all); each counts its fastest
    round, after one warm-up step.

    It draws its inputs from its own generator and restores torch's global RNG, so a run's initial
    weights and random numbers are the same whether or not the timing ran.
    """

    def timer(variants: list[Variant]) -> dict[Variant, float]:
        rng_state = torch.get_rng_state()
        try:
            model = Unet(model_config).to(device).train()  # its initialisation draws from the global RNG
        finally:
            torch.set_rng_state(rng_state)
        generator = torch.Generator().manual_seed(0)
        size = model_config.image_size
        x0 = torch.rand((batch_size, model_config.im_channels, size, size), generator=generator) * 2 - 1
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, len(forward.snr), (batch_size,), generator=generator).to(device)
        y = None
        if model_config.num_classes:
            y = torch.randint(0, model_config.num_classes + 1, (batch_size,), generator=generator).to(device)
        x0, noise = x0.to(device), noise.to(device)

        def one_step(variant: Variant) -> float:
            bf16, channels_last = variant
            layout = torch.channels_last if channels_last else torch.contiguous_format
            model.to(memory_format=layout)
            x0_v, noise_v = x0.contiguous(memory_format=layout), noise.contiguous(memory_format=layout)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = diffusion_loss(model, forward, x0_v, noise_v, t, y=y)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

        for variant in variants:  # warm-up: kernels, allocator, oneDNN primitives
            one_step(variant)
        timings: dict[Variant, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for variant in variants:
                timings[variant].append(one_step(variant))
        return {v: min(s) for v, s in timings.items()}

    return timer
