"""Sample quality per sampler, step count and sampling option: FID (LeNet features) with its floor,
precision, recall, and seconds per image, for one model. Not a test.

For each row it samples with ddpm-run's library (the NumPy samplers of ``generate()``) and the model's
noise prediction from ONNX Runtime (MODEL.onnx, as users run it) or from the same weights in torch
(MODEL.pt, a checkpoint; ``--device cuda`` runs them on a GPU to make a long table quick; the
samplers' maths is the same, the model calls agree within the export's parity tolerance). It writes a
PNG grid of the first 64 images and measures the images with ddpm eval's library against the
labelled real data. Prints a Markdown table; s/image is this machine's, with this eps model.

    python bench/quality.py MODEL.onnx --real /usr/share/datasets/fashion-mnist --out bench/quality-out \\
        --rows ddpm:100,dpm-solver++:20/spacing=logsnr/x0=clip,ddim:10@500 --label my-model

A row is ``SAMPLER:STEPS[/OPTION=VALUE...][@NUM_IMAGES]``; options are ``spacing``, ``rho``,
``guidance`` and the sampler's own (``x0``, ``x0_percentile``, ``eta``, ``final``). Each row reports the floor
for its own n. Outputs are named after ``--label``, so two models' tables concatenate into one.

Class-conditional models: a row with ``guidance=W`` draws NUM_IMAGES / K images of each of the K
classes (as ``ddpm-run sample --class all --per-class NUM_IMAGES/K --guidance-scale W``) and adds
the classifier's agreement with the requested class; its grid has one class per row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ddpm_runtime.files import ensure_writable_dir, write_png
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.images import make_grid
from ddpm_training.data import ImageData, load_images
from ddpm_training.evaluation import evaluate, feature_classifier

DEFAULT_ROWS = "ddpm:100,ddim:20,dpm-solver++:20,dpm-solver++-sde:20"
GENERATE_FIELDS = ("spacing", "rho", "guidance_scale")


def parse_row(item: str, default_n: int) -> tuple[str, SamplingSettings]:
    spec, _, count = item.partition("@")
    sampler_steps, *pairs = spec.split("/")
    sampler, _, steps = sampler_steps.partition(":")
    fields, options = {}, {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        key = "guidance_scale" if key == "guidance" else key
        target = fields if key in GENERATE_FIELDS else options
        target[key] = value if key in ("spacing", "x0", "final") else float(value)
    n = int(count) if count else default_n
    return spec, SamplingSettings(
        num_images=n, batch_size=100, sampler=sampler.strip(), steps=int(steps), seed=0, options=options, **fields
    )


def class_labels(name: str, metadata, num_images: int) -> tuple[tuple[int, ...] | None, int]:
    """Balanced labels, class by class, for a guided row of a conditional model; (None, 8) otherwise."""
    if "guidance=" not in name:
        return None, 8
    if metadata.classes is None:
        raise SystemExit(f"row {name}: guidance needs a class-conditional model")
    k = metadata.classes.num_classes
    if num_images % k:
        raise SystemExit(f"row {name}: {num_images} images do not split evenly over {k} classes")
    return tuple(int(c) for c in np.repeat(np.arange(k), num_images // k)), num_images // k


def eps_model_for(path: Path, device: str, weights: str = "ema"):
    """(eps callable, metadata) from an ONNX file or a checkpoint's weights (EMA or raw) in torch."""
    if path.suffix == ".onnx":
        from ddpm_runtime.onnx_model import load_onnx_model

        model = load_onnx_model(path, "cpu")
        return model, model.metadata
    import torch

    from ddpm_export.source import load_source
    from ddpm_training.diffusion.torch_eps import numpy_eps_model

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # full float32, as ONNX
    source = load_source(path, weights)
    return numpy_eps_model(source.model.to(device), device), source.metadata({"format": "torch"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="MODEL.onnx, or a checkpoint (.pt) run in torch")
    parser.add_argument("--real", type=Path, required=True, help="labelled real data (ddpm eval --real)")
    parser.add_argument("--out", type=Path, default=Path("bench/quality-out"), help="grids and table go here")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="SAMPLER:STEPS[/OPTION=VALUE...][@N],...")
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for a checkpoint (cpu, cuda)")
    parser.add_argument("--weights", default="ema", help="a checkpoint's weights to sample: ema or raw")
    parser.add_argument("--no-samples", action="store_true", help="do not keep each row's samples.npz")
    parser.add_argument(
        "--label", default=None, help="name of the model in the table's first column (default: the file's folder)"
    )
    args = parser.parse_args()

    out = ensure_writable_dir(args.out)
    label = args.label or args.model.resolve().parent.name
    eps_model, metadata = eps_model_for(args.model, args.device, args.weights)
    real = load_images(args.real)
    classifier = feature_classifier(real)
    lines = [
        (
            f"model `{args.model}` ({metadata.training.get('steps')} training steps, "
            f"{'EMA' if metadata.training.get('ema') else 'raw'} weights, eps from "
            f"{'ONNX Runtime' if args.model.suffix == '.onnx' else 'torch on ' + args.device}); real data "
            f"`{args.real}`; LeNet held-out accuracy {classifier.accuracy:.1%}"
        ),
        "",
        "| model | row | images | FID | floor | precision | recall | agreement | s/image | grid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in (parse_row(item, args.num_images) for item in args.rows.split(",")):
        settings = SamplingSettings(**{**row.__dict__, "batch_size": args.batch_size, "seed": args.seed})
        labels, columns = class_labels(name, metadata, settings.num_images)
        settings = SamplingSettings(**{**settings.__dict__, "labels": labels})
        start = time.perf_counter()
        images = generate(eps_model, metadata, settings)
        seconds = (time.perf_counter() - start) / settings.num_images
        slug = name.replace(":", "-").replace("/", "-").replace("=", "")
        grid_name = f"grid-{label}-{slug}.png"
        shown = images[:64] if labels is None else images.reshape(-1, columns, *images.shape[1:])[:, :10]
        write_png(out / grid_name, make_grid(shown.reshape(-1, *images.shape[1:]), ncols=min(columns, 10)))
        arrays = {"arr_0": images}
        if labels is not None:  # as ddpm-run sample --class writes them
            arrays.update(labels=np.asarray(labels), class_names=np.array(metadata.classes.names, dtype=str))
        if not args.no_samples:
            np.savez(out / f"samples-{label}-{slug}.npz", **arrays)
        sample_labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        report = evaluate(ImageData(images, sample_labels, name), real, classifier, seed=args.seed)
        agreement = "-" if report.class_agreement is None else f"{report.class_agreement:.1%}"
        line = (
            f"| {label} | {name} | {settings.num_images} | {report.fid:.2f} | {report.fid_floor:.2f} | "
            f"{report.precision:.3f} | {report.recall:.3f} | {agreement} | {seconds:.4f} | [grid]({grid_name}) |"
        )
        lines.append(line)
        print(line, flush=True)
    table = "\n".join(lines) + "\n"
    (out / f"table-{label}.md").write_text(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
