"""Sampling throughput: ddpm-run (NumPy sampler + ONNX Runtime) against a torch-eager loop like the seed's.

Same model weights, sampler (DDPM, the seed's equations), step count and batch size; alternating
rounds in one process; printed as images per second and a ratio against the seed-style loop.

The seed-style loop is the seed's ``generate`` at batch size B: the seed's Unet (nn.MultiheadAttention),
``torch.no_grad()``, and ``DiffusionReverseProcess.sample_prev_timestep`` (respaced when --steps < T,
alpha_t = alpha_bar_t / alpha_bar_prev, exactly as the NumPy sampler does).

    python bench/sample_throughput.py --checkpoint runs/NAME/checkpoint.pt     # or random seed-small weights
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ddpm_export.onnx_export import export_onnx
from ddpm_export.source import load_source
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.timesteps import spaced_timesteps
from ddpm_training.checkpoint import save_checkpoint
from ddpm_training.config import preset
from ddpm_training.data import ImageData
from ddpm_training.train_config import TrainConfig
from ddpm_training.trainer import Trainer

from seed_baseline import seed_style_unet  # bench/ is on sys.path when run as a script


def seed_style_generate(model, schedule: NoiseSchedule, timesteps, batch: int, shape, generator) -> torch.Tensor:
    """The seed's generate(): eager torch, one model call and one sample_prev_timestep per step."""
    a_bar = torch.tensor(schedule.alpha_bars, dtype=torch.float32)
    xt = torch.randn(batch, *shape, generator=generator)
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            t = int(t)
            ab_prev = a_bar[int(timesteps[i + 1])] if i + 1 < len(timesteps) else torch.tensor(1.0)
            a_t = a_bar[t] / ab_prev
            noise_pred = model(xt, torch.full((batch,), t))
            mean = (xt - ((1 - a_t) * noise_pred) / torch.sqrt(1 - a_bar[t])) / torch.sqrt(a_t)
            if i + 1 == len(timesteps):
                xt = mean
            else:
                variance = (1 - ab_prev) / (1 - a_bar[t]) * (1 - a_t)
                xt = mean + variance**0.5 * torch.randn(xt.shape, generator=generator)
    return torch.clamp(xt, -1.0, 1.0)


def random_checkpoint(folder: Path, preset_name: str) -> Path:
    data = ImageData(np.zeros((128, 28, 28, 1), np.uint8), None, "zeros")
    trainer = Trainer(preset(preset_name).with_image(1, 28), ScheduleConfig(), TrainConfig(), data)
    path = folder / "random.pt"
    save_checkpoint(path, trainer.state_dict())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: random seed-small weights")
    parser.add_argument("--preset", default="seed-small", help="for the random checkpoint")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="DDPM steps (respaced) per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--opset", type=int, default=23)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint or random_checkpoint(tmp, args.preset)
        source = load_source(checkpoint)
        export_onnx(source, tmp / "model.onnx", opset=args.opset)
        onnx_model = load_onnx_model(tmp / "model.onnx", "cpu")
        config = source.model_config
        seed_model = seed_style_unet(config).eval()
        seed_model.load_state_dict(source.model.state_dict())
        schedule = NoiseSchedule.from_config(source.schedule)
        timesteps = spaced_timesteps(schedule.num_timesteps, args.steps)
        shape = (config.im_channels, config.image_size, config.image_size)
        settings = SamplingSettings(args.batch_size, args.batch_size, "ddpm", args.steps, 0)
        generator = torch.Generator().manual_seed(0)

        loops = {
            "seed-style torch loop (nn.MultiheadAttention)": lambda: seed_style_generate(
                seed_model, schedule, timesteps, args.batch_size, shape, generator
            ),
            "same loop, our torch model (SDPA)": lambda: seed_style_generate(
                source.model, schedule, timesteps, args.batch_size, shape, generator
            ),
            f"ddpm-run: NumPy + ONNX Runtime (opset {args.opset})": lambda: generate(
                onnx_model, onnx_model.metadata, settings
            ),
        }
        for run in loops.values():  # warm-up
            run()
        seconds: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, run in loops.items():
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)

    print(
        f"{config.to_dict()['down_ch']} U-Net from {checkpoint.name if args.checkpoint else 'random ' + args.preset}; "
        f"sampler ddpm, {args.steps} steps, batch {args.batch_size}"
    )
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {__import__('onnxruntime').__version__}, "
        f"{platform.machine()}; median of {args.rounds} rounds\n"
    )
    print(f"{'loop':52s} {'s/batch':>8s} {'img/s':>7s} {'vs seed':>8s}")
    baseline = None
    for name, values in seconds.items():
        per_batch = statistics.median(values)
        baseline = baseline or per_batch
        print(f"{name:52s} {per_batch:8.2f} {args.batch_size / per_batch:7.1f} {baseline / per_batch:7.2f}x")


if __name__ == "__main__":
    main()
