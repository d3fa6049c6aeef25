"""The levers tried for a faster fp32 training step, each against the plain eager step in one process.

A bare step (forward, L_simple, backward, Adam) of one preset at one batch on fixed inputs, so only
the lever differs; variants alternate within each round. Levers (``--levers``, comma-separated):

    eager            the baseline: contiguous NCHW, torch.optim.Adam's default (foreach) implementation
    channels_last    NHWC weights and inputs (what ``ddpm train --memory-format`` chooses between)
    fused_adam       torch.optim.Adam(fused=True)
    math_attention   scaled_dot_product_attention's math kernel instead of the flash one
    flush_denormal   torch.set_flush_denormal(True) for the whole process (set last, after the others)
    compile          torch.compile(model), inductor's CPU backend (needs gcc); add -cl for channels_last
    compile_autotune torch.compile(model, mode="max-autotune-no-cudagraphs")

    python bench/step_levers.py --levers eager,channels_last,fused_adam,compile
    OMP_NUM_THREADS=1 python bench/step_levers.py                       # one thread
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/step_levers.py
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from machine import describe, matmul_peak_gflops, training_step_flops  # bench/ is on sys.path as a script
from torch.nn.attention import SDPBackend, sdpa_kernel

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training.diffusion.forward import ForwardProcess
from ddpm_training.diffusion.objective import diffusion_loss
from ddpm_training.model.config import preset
from ddpm_training.model.unet import Unet

from seed_baseline import seed_style_unet


def make_step(lever: str, config, forward: ForwardProcess, x0, noise, t):
    torch.manual_seed(0)
    model = Unet(config).train()
    layout = torch.channels_last if lever in ("channels_last", "compile-cl") else torch.contiguous_format
    model = model.to(memory_format=layout)
    x0, noise = x0.contiguous(memory_format=layout), noise.contiguous(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=lever == "fused_adam" or None)
    called = model
    if lever.startswith("compile"):
        mode = "max-autotune-no-cudagraphs" if lever == "compile_autotune" else None
        called = torch.compile(model, mode=mode, dynamic=False)
    context = (lambda: sdpa_kernel(SDPBackend.MATH)) if lever == "math_attention" else contextlib.nullcontext

    def step() -> None:
        with context():
            loss = diffusion_loss(called, forward, x0, noise, t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--levers", default="eager,channels_last,fused_adam,math_attention,flush_denormal")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per lever; the median counts")
    args = parser.parse_args()

    peak = matmul_peak_gflops()
    config = preset(args.preset).with_image(1, 28)
    forward = ForwardProcess(NoiseSchedule.from_config(ScheduleConfig()))
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand((args.batch_size, 1, 28, 28), generator=generator) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.randint(0, 1000, (args.batch_size,), generator=generator)
    flops = training_step_flops(seed_style_unet(config).train(), x0, t.float())

    levers = args.levers.split(",")
    steps, warmup = {}, {}
    for lever in levers:
        start = time.perf_counter()
        steps[lever] = make_step("eager" if lever == "flush_denormal" else lever, config, forward, x0, noise, t)
        for _ in range(2):
            steps[lever]()
        warmup[lever] = time.perf_counter() - start
    seconds: dict[str, list[float]] = {lever: [] for lever in levers}
    for _ in range(args.rounds):
        for lever in levers:
            torch.set_flush_denormal(lever == "flush_denormal")
            start = time.perf_counter()
            steps[lever]()
            seconds[lever].append(time.perf_counter() - start)
    torch.set_flush_denormal(False)

    print(describe(peak))
    print(
        f"preset {args.preset}, batch {args.batch_size}, fp32, {flops / 1e9:.1f} GFLOP per step; median of "
        f"{args.rounds} steps\n"
    )
    print(f"{'lever':18s} {'s/step':>7s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs eager':>8s} {'warm-up s':>9s}")
    baseline = statistics.median(seconds[levers[0]])
    for lever in levers:
        per_step = statistics.median(seconds[lever])
        gflops = flops / per_step / 1e9
        print(
            f"{lever:18s} {per_step:7.3f} {gflops:8.1f} {gflops / peak:7.1%} {baseline / per_step:7.2f}x "
            f"{warmup[lever]:9.1f}"
        )


if __name__ == "__main__":
    main()
