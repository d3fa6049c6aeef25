"""Training throughput: our trainer against a plain eager re-implementation of the seed's loop.

Both run in this one process on the same preset, batch size and data, in alternating rounds (so
drift of the machine affects both), and the result is printed as images per second and a ratio.

The seed's loop (shared/seeds/000_*.txt, ``train``): a per-item Dataset converting one row of
pixels at a time (as ``CustomMnistDataset.__getitem__`` + ``ToTensor``; here from a NumPy array
instead of a pandas row lookup, which only makes the baseline faster), a shuffling DataLoader, the
seed's Unet with ``nn.MultiheadAttention`` called as the seed calls it (bench/seed_baseline.py), its
forward process, MSE, ``loss.item()`` every step.
Ours: ``Trainer.train_step`` with its defaults, which also do EMA and gradient clipping, in each
precision and memory layout that ``--precision auto --memory-format auto`` chooses between, and the
choice ``ddpm train`` makes on this machine (its own short timing, printed before the table).

Printed with the machine (bench/machine.py): CPU, ISA level, bf16 instructions, threads, the FLOPs
of one forward + backward step, the GFLOP/s reached and the share of the FP32 matmul peak measured in
this process.

    python bench/train_throughput.py                      # seed-small, batch 128, Fashion-MNIST
    python bench/train_throughput.py --batch-size 64 --with-bf16 --also fast
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/train_throughput.py ...
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe, matmul_peak_gflops, training_step_flops  # bench/ is on sys.path as a script
from torch.utils.data import DataLoader, Dataset

from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_training.data import ImageData, load_images
from ddpm_training.diffusion.forward import ForwardProcess
from ddpm_training.model.config import preset
from ddpm_training.train.compute import choose_compute, detect_capabilities, step_timer, variant_name
from ddpm_training.train.config import TrainConfig
from ddpm_training.train.data_objective import data_trainer

from seed_baseline import seed_add_noise, seed_style_unet

FASHION = Path("/usr/share/datasets/fashion-mnist")


class SeedStyleDataset(Dataset):
    """The seed's CustomMnistDataset: one flat row of 0..255 pixels decoded per item."""

    def __init__(self, rows: np.ndarray, side: int):
        self.rows, self.side = rows, side

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        img = np.reshape(self.rows[index], (self.side, self.side)).astype(np.uint8)
        img_tensor = torch.from_numpy(img).float().div(255.0).unsqueeze(0)  # ToTensor: (1, H, W) in [0, 1]
        return 2 * img_tensor - 1


class SeedLoop:
    def __init__(self, data: ImageData, config, batch_size: int):
        rows = data.images.reshape(data.num_images, -1)
        self.loader = DataLoader(SeedStyleDataset(rows, data.image_size), batch_size, shuffle=True)
        self.iterator = iter(self.loader)
        torch.manual_seed(0)
        self.model = seed_style_unet(config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.criterion = torch.nn.MSELoss()
        # The seed's float32 schedule: torch.linspace(1e-4, 0.02, 1000), cumulative product.
        self.alpha_bars = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)

    def step(self) -> None:
        try:
            imgs = next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.loader)
            imgs = next(self.iterator)
        noise = torch.randn_like(imgs)
        t = torch.randint(0, 1000, (imgs.shape[0],))
        noisy_imgs = seed_add_noise(self.alpha_bars, imgs, noise, t)
        self.optimizer.zero_grad()
        noise_pred = self.model(noisy_imgs, t)
        loss = self.criterion(noise_pred, noise)
        loss.item()
        loss.backward()
        self.optimizer.step()


def time_steps(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        default=str(FASHION) if FASHION.exists() else None,
        help="any dataset `ddpm train` reads (default: Fashion-MNIST, else random images)",
    )
    parser.add_argument("--preset", default="seed-small", help="the seed loop's preset, and ours")
    parser.add_argument("--also", default="", help="more presets to time with our trainer, comma-separated")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round and loop")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--with-bf16", action="store_true", help="also time our trainer with bf16 autocast")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()

    if args.data:
        data = load_images(args.data, args.limit)
    else:
        rng = np.random.default_rng(0)
        data = ImageData(rng.integers(0, 256, (args.limit, 28, 28, 1), dtype=np.uint8), None, "random")
    config = preset(args.preset).with_image(data.channels, data.image_size)

    peak = matmul_peak_gflops()
    loops = {"seed loop (eager, nn.MultiheadAttention)": SeedLoop(data, config, args.batch_size).step}
    flops = {}
    precisions = [False, True] if args.with_bf16 else [False]
    presets = [args.preset, *filter(None, args.also.split(","))]
    choices, preset_flops = [], {}
    for preset_name in presets:
        preset_config = preset(preset_name).with_image(data.channels, data.image_size)
        forward = ForwardProcess(NoiseSchedule.from_config(ScheduleConfig()))
        timer = step_timer(preset_config, forward, args.batch_size, torch.device("cpu"))
        choice = choose_compute("auto", "auto", detect_capabilities(torch.device("cpu")), timer)
        choices.append(f"{preset_name}: {choice.name} ({choice.reason})")
        x = torch.zeros(args.batch_size, data.channels, data.image_size, data.image_size)
        # Counted on the seed-style model (the same maths): FlopCounterMode does not count SDPA's CPU kernel.
        step_flops = training_step_flops(seed_style_unet(preset_config).train(), x, torch.zeros(args.batch_size))
        preset_flops[preset_name] = step_flops
        for bf16 in precisions:
            for channels_last in (False, True):
                train_config = TrainConfig(batch_size=args.batch_size, bf16=bf16, channels_last=channels_last)
                label = f"ours, {preset_name}, {variant_name(bf16, channels_last)}"
                loops[label] = data_trainer(preset_config, ScheduleConfig(), train_config, data).train_step
                flops[label] = step_flops
    flops[next(iter(loops))] = preset_flops[args.preset]

    for step in loops.values():  # warm-up: allocator, kernels, first DataLoader iterator
        step()
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, step in loops.items():
            seconds[name].append(time_steps(step, args.steps))

    print(describe(peak))
    print(f"preset {args.preset}, batch {args.batch_size}, data {data.source} ({data.num_images} images)")
    print(f"{args.rounds} rounds x {args.steps} timed steps per loop, median step time")
    print("ddpm train's choice with --precision auto --memory-format auto:")
    for line in choices:
        print(f"  {line}")
    print()
    baseline = None
    header = f"{'loop':44s} {'s/step':>7s} {'img/s':>7s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs seed':>8s}"
    print(header)
    for name, values in seconds.items():
        per_step = statistics.median(values)
        baseline = baseline or per_step
        gflops = flops[name] / per_step / 1e9
        print(
            f"{name:44s} {per_step:7.3f} {args.batch_size / per_step:7.1f} {gflops:8.1f} {gflops / peak:7.1%} "
            f"{baseline / per_step:7.2f}x"
        )
    counted = ", ".join(f"{name} {count / 1e9:.1f}" for name, count in preset_flops.items())
    print(f"\nGFLOP per forward + backward step at batch {args.batch_size} (FlopCounterMode): {counted}")


if __name__ == "__main__":
    main()
