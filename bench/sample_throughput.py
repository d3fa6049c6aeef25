"""Sampling throughput: ddpm-run (NumPy sampler + ONNX Runtime) against a torch-eager loop like the seed's.

Same model weights and number of model calls per image; alternating rounds in one process; printed as
seconds per image, GFLOP/s, the share of the FP32 matmul peak measured in this process and a ratio
against the seed-style loop, under a header naming the machine (bench/machine.py). ddpm-run runs its
default sampler (DPM-Solver++(2M) SDE) as it shipped before the portable-speed work (GroupNorm as
torch exports it, batch 64, one session) and as it is now (GroupNorm as LayerNormalization,
export/onnx_graph.py, the default batch of 8, and each call's rows split over one single-threaded
session per physical core, runtime row_split.py); the torch loops run the seed's DDPM steps, respaced to the same count.

The seed-style loop is the seed's ``generate`` at batch size B: the seed's Unet (nn.MultiheadAttention),
``torch.no_grad()``, and ``DiffusionReverseProcess.sample_prev_timestep`` (respaced when --steps < T,
alpha_t = alpha_bar_t / alpha_bar_prev, exactly as the NumPy sampler does).

    python bench/sample_throughput.py --checkpoint runs/NAME/checkpoint.pt     # or random `fast` weights

With ``--generator``: ddpm-run's NumPy sampler against a generator file (``ddpm export-generator``, the
same sampler inside the graph) on the same model, batch 8 and 64: the generator in one session with a
thread per core, and split over single-threaded sessions as ``ddpm-run sample generator.onnx`` runs it;
and ddpm-run itself in one session (``--threads``), as a caller who ports the sampler would run it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from machine import describe, forward_flops, matmul_peak_gflops, physical_cores  # bench/ is on sys.path as a script

from ddpm_export.onnx_export import export_onnx, to_onnx_proto
from ddpm_export.source import load_source
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_runtime.schedule import NoiseSchedule, ScheduleConfig
from ddpm_runtime.timesteps import spaced_timesteps
from ddpm_training.data import ImageData
from ddpm_training.model.config import preset
from ddpm_training.train.checkpoint import save_checkpoint
from ddpm_training.train.config import TrainConfig
from ddpm_training.train.data_objective import data_trainer

from seed_baseline import seed_style_unet


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
    trainer = data_trainer(preset(preset_name).with_image(1, 28), ScheduleConfig(), TrainConfig(), data)
    path = folder / "random.pt"
    save_checkpoint(path, trainer.state_dict())
    return path


def generator_loops(tmp: Path, now, one_session_model, cores: int, args, ddpm_run) -> dict:
    """ddpm-run's NumPy sampler and the generator of the same model and sampler, at batch 8 and 64; the
    sampler also on the model file in one session (``--threads``), the way a caller with one session runs it."""
    from ddpm_export.generator import GeneratorRequest, export_generator
    from ddpm_runtime.generator_model import load_generator
    from ddpm_runtime.samplers import get_sampler

    sampler = SamplingSettings().sampler
    export_generator(tmp / "model.onnx", tmp / "generator.onnx", GeneratorRequest(sampler=sampler, steps=args.steps))
    one_session = load_generator(tmp / "generator.onnx", "cpu", threads=cores)
    split = load_generator(tmp / "generator.onnx", "cpu")
    name = f"{get_sampler(sampler).name}, {args.steps} calls"

    def draw(model, batch):
        settings = SamplingSettings(num_images=args.images, batch_size=batch, sampler=sampler, steps=args.steps)
        return lambda: generate(model, model.metadata, settings)

    loops = {}
    for batch in (8, 64):
        sessions = len(now.row_sessions) or 1
        loops[f"ddpm-run sample (NumPy {name}), batch {batch}, rows over {sessions} session(s)"] = ddpm_run(now, batch)
        loops[f"ddpm-run sample --threads {cores}: one session, batch {batch}"] = ddpm_run(one_session_model, batch)
        loops[f"generator, one session ({cores} threads), batch {batch}"] = draw(one_session, batch)
        loops[f"generator, rows over {len(split.row_sessions) or 1} 1-thread session(s), batch {batch}"] = draw(
            split, batch
        )
    return loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: random weights of --preset")
    parser.add_argument("--preset", default="fast", help="for the random checkpoint")
    parser.add_argument("--batch-size", type=int, default=SamplingSettings().batch_size, help="ddpm-run now")
    parser.add_argument("--before-batch-size", type=int, default=64, help="ddpm-run's default before")
    parser.add_argument("--images", type=int, default=64, help="images per loop and round")
    parser.add_argument("--steps", type=int, default=20, help="model calls per image")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--opset", type=int, default=23)
    parser.add_argument("--generator", action="store_true", help="ddpm-run against a generator file (see above)")
    args = parser.parse_args()

    peak = matmul_peak_gflops()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint or random_checkpoint(tmp, args.preset)
        source = load_source(checkpoint)
        export_onnx(source, tmp / "model.onnx", opset=args.opset)
        onnx.save(to_onnx_proto(source, args.opset, group_norm_rewrite=False), tmp / "before.onnx")
        cores = physical_cores()
        # ddpm-run before this work: one session with a thread per core (and GroupNorm as torch exports it);
        # now, by default, each call's rows split over single-threaded sessions, one per core (row_split.py).
        before = load_onnx_model(tmp / "before.onnx", "cpu", threads=cores)
        one_session = load_onnx_model(tmp / "model.onnx", "cpu", threads=cores)
        now = load_onnx_model(tmp / "model.onnx", "cpu")
        config = source.model_config
        seed_model = seed_style_unet(config).eval()
        # the U-Net's own weights (a v or edm model's U-Net sits inside the eps wrapper); only timed here
        seed_model.load_state_dict(getattr(source.model, "network", source.model).state_dict())
        schedule = NoiseSchedule.from_config(source.schedule)
        timesteps = spaced_timesteps(schedule.num_timesteps, args.steps)
        shape = (config.im_channels, config.image_size, config.image_size)
        generator = torch.Generator().manual_seed(0)
        # Counted on the seed-style model (the same maths): FlopCounterMode does not count SDPA's CPU kernel.
        flops_per_image = forward_flops(seed_model.train(), torch.zeros(1, *shape), torch.zeros(1)) * args.steps
        seed_model.eval()

        def torch_loop(model, batch):
            def run():
                for first in range(0, args.images, batch):
                    count = min(batch, args.images - first)
                    seed_style_generate(model, schedule, timesteps, count, shape, generator)

            return run

        def ddpm_run(model, batch):
            settings = SamplingSettings(num_images=args.images, batch_size=batch, steps=args.steps)
            return lambda: generate(model, model.metadata, settings)

        b, before_b = args.batch_size, args.before_batch_size
        split = len(now.row_sessions) or 1
        if args.generator:
            loops = generator_loops(tmp, now, one_session, cores, args, ddpm_run)
        else:
            loops = {
                f"seed-style torch loop (nn.MultiheadAttention), batch {before_b}": torch_loop(seed_model, before_b),
                f"same loop, our torch model (SDPA), batch {before_b}": torch_loop(source.model, before_b),
                f"ddpm-run before: GroupNorm as exported, batch {before_b}": ddpm_run(before, before_b),
                f"ddpm-run: GroupNorm as LayerNorm, batch {before_b}": ddpm_run(one_session, before_b),
                "ddpm-run: GroupNorm as LayerNorm, batch 16 (the default until row splits)": ddpm_run(one_session, 16),
                f"ddpm-run: batch 16, rows over {split} 1-thread session(s)": ddpm_run(now, 16),
                f"ddpm-run now: batch {b}, rows over {split} 1-thread session(s)": ddpm_run(now, b),
            }
        for run in loops.values():  # warm-up
            run()
        seconds: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, run in loops.items():
                start = time.perf_counter()
                run()
                seconds[name].append((time.perf_counter() - start) / args.images)

    print(describe(peak))
    print(
        f"{config.to_dict()['down_ch']} U-Net from {checkpoint.name if args.checkpoint else 'random ' + args.preset}; "
        f"{args.images} images, {args.steps} model calls each ({flops_per_image / 1e9:.2f} GFLOP per image); "
        f"onnxruntime {__import__('onnxruntime').__version__} (opset {args.opset}); median of {args.rounds} rounds\n"
    )
    print(f"{'loop':74s} {'s/image':>8s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs first':>8s}")
    baseline = None
    for name, values in seconds.items():
        per_image = statistics.median(values)
        baseline = baseline or per_image
        gflops = flops_per_image / per_image / 1e9
        print(f"{name:74s} {per_image:8.4f} {gflops:8.1f} {gflops / peak:7.1%} {baseline / per_image:7.2f}x")


if __name__ == "__main__":
    main()
