"""Training throughput: our trainer against a plain eager re-implementation of the seed's loop.

Both run in this one process on the same preset, batch size and data, in alternating rounds (so
drift of the machine affects both), and the result is printed as images per second and a ratio.

The seed's loop (shared/seeds/000_*.txt, ``train``): a per-item Dataset converting one row of
pixels at a time (as ``CustomMnistDataset.__getitem__`` + ``ToTensor``; here from a NumPy array
instead of a pandas row lookup, which only makes the baseline faster), a shuffling DataLoader, the
seed's Unet with ``nn.MultiheadAttention`` called as the seed calls it (bench/seed_baseline.py), its
forward process, MSE, ``loss.item()`` every step.
Ours: ``Trainer.train_step`` with its defaults, which also do EMA and gradient clipping.

    python bench/train_throughput.py                      # seed-small, batch 128, Fashion-MNIST
    python bench/train_throughput.py --bf16 --steps 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ddpm_runtime.schedule import ScheduleConfig
from ddpm_training.config import preset
from ddpm_training.data import ImageData, load_images
from ddpm_training.train_config import TrainConfig
from ddpm_training.trainer import Trainer

from seed_baseline import seed_add_noise, seed_style_unet  # bench/ is on sys.path when run as a script

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
    parser.add_argument("--bf16", action="store_true", help="also time our trainer with bf16 autocast")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()

    if args.data:
        data = load_images(args.data, args.limit)
    else:
        rng = np.random.default_rng(0)
        data = ImageData(rng.integers(0, 256, (args.limit, 28, 28, 1), dtype=np.uint8), None, "random")
    config = preset(args.preset).with_image(data.channels, data.image_size)

    loops = {"seed loop (eager, nn.MultiheadAttention)": SeedLoop(data, config, args.batch_size).step}
    variants = [("ours (fp32)", False)] + ([("ours (bf16 autocast)", True)] if args.bf16 else [])
    for preset_name in [args.preset, *filter(None, args.also.split(","))]:
        preset_config = preset(preset_name).with_image(data.channels, data.image_size)
        for name, bf16 in variants:
            train_config = TrainConfig(batch_size=args.batch_size, bf16=bf16)
            label = name if preset_name == args.preset else f"{name}, preset {preset_name}"
            loops[label] = Trainer(preset_config, ScheduleConfig(), train_config, data).train_step

    for step in loops.values():  # warm-up: allocator, kernels, first DataLoader iterator
        step()
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, step in loops.items():
            seconds[name].append(time_steps(step, args.steps))

    print(f"preset {args.preset}, batch {args.batch_size}, data {data.source} ({data.num_images} images)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{args.rounds} rounds x {args.steps} timed steps per loop, median step time\n")
    baseline = None
    print(f"{'loop':48s} {'s/step':>8s} {'img/s':>8s} {'vs seed':>8s}")
    for name, values in seconds.items():
        per_step = statistics.median(values)
        baseline = baseline or per_step
        print(f"{name:48s} {per_step:8.2f} {args.batch_size / per_step:8.1f} {baseline / per_step:7.2f}x")


if __name__ == "__main__":
    main()
