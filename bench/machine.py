"""What machine a benchmark ran on, and its FP32 peak measured in the same process.

Every figure in docs/benchmarks/ names its machine: the CPU model, the ISA level torch dispatches to,
whether oneDNN has bf16 instructions, threads and physical cores, and any variable that imitates
another CPU (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS). The peak is a
2048^3 fp32 matmul (MKL on x86), the ceiling a convolution-heavy step can approach.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ddpm_runtime.row_split import physical_cores  # what ONNX Runtime and ddpm-run follow

IMITATION_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_instructions() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(seconds) / 1e9


def describe(peak_gflops: float) -> str:
    imitation = ", ".join(f"{name}={os.environ[name]}" for name in IMITATION_VARIABLES if name in os.environ)
    lines = [
        f"CPU: {cpu_model()} ({platform.machine()}), {physical_cores()} physical cores, "
        f"torch ISA {torch.backends.cpu.get_cpu_capability()}, bf16 instructions: "
        f"{'yes' if bf16_instructions() else 'no'}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"FP32 peak (2048^3 matmul, this process): {peak_gflops:.1f} GFLOP/s",
    ]
    if imitation:
        lines.append(f"imitating another CPU: {imitation}")
    return "\n".join(lines)


def forward_flops(model, *inputs) -> int:
    """FLOPs of one forward call (matmuls, convolutions, attention), as torch's FlopCounterMode counts them.

    Count on ``seed_style_unet(config).train()``, the same maths: FlopCounterMode counts neither SDPA's
    CPU flash kernel (our model) nor nn.MultiheadAttention's fused inference path (the seed model in
    eval mode); in training mode the latter runs as counted matmuls. For the fast preset at batch 64:
    27.8 GFLOP, of which 2.0 are attention."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops()


def training_step_flops(model, *inputs) -> int:
    """FLOPs of one forward + backward pass (the optimiser's elementwise work is not counted); count on
    the seed-style model in training mode, as for ``forward_flops``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(*inputs).float().square().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()
