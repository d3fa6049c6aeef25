"""Sample quality per sampler and step count: FID (LeNet features) with its floor, precision, recall,
and seconds per image on this machine, for one exported model. Not a test.

For each row it samples with ddpm-run's library (NumPy sampler + ONNX Runtime, as users run it),
times that, writes a PNG grid of the first 64 images, and measures the images with ddpm eval's
library against the labelled real data. Prints a Markdown table.

    python bench/quality.py MODEL.onnx --real /usr/share/datasets/fashion-mnist --out bench/quality-out \
        --rows ddim:10,ddim:20,ddim:50,ddim:100,dpm-solver++:10,dpm-solver++:20,ddpm:1000 --label my-model

``--num-images`` applies to every row; ``ddpm:1000@250`` gives one row its own image count (each row
reports the floor for its own n, since FID depends on n). Outputs are named after ``--label``
(``table-LABEL.md``, ``grid-LABEL-SAMPLER-STEPS.png``), so two models' tables concatenate into one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ddpm_runtime.files import ensure_writable_dir, write_png
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.images import make_grid
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_training.data import ImageData, load_images
from ddpm_training.evaluation import evaluate, feature_classifier

DEFAULT_ROWS = "ddpm:1000@250,ddim:10,ddim:20,ddim:50,ddim:100,dpm-solver++:10,dpm-solver++:20"


def parse_rows(text: str, default_n: int) -> list[tuple[str, int, int]]:
    rows = []
    for item in text.split(","):
        spec, _, count = item.partition("@")
        sampler, _, steps = spec.partition(":")
        rows.append((sampler.strip(), int(steps), int(count) if count else default_n))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--real", type=Path, required=True, help="labelled real data (ddpm eval --real)")
    parser.add_argument("--out", type=Path, default=Path("bench/quality-out"), help="grids and table go here")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="sampler:steps[@num_images],...")
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label", default=None, help="name of the model in the table's first column (default: the file's folder)"
    )
    args = parser.parse_args()

    out = ensure_writable_dir(args.out)
    label = args.label or args.model.resolve().parent.name
    model = load_onnx_model(args.model, "cpu")
    real = load_images(args.real)
    classifier = feature_classifier(real)
    lines = [
        (
            f"model `{args.model}` ({model.metadata.training.get('steps')} training steps, "
            f"{'EMA' if model.metadata.training.get('ema') else 'raw'} weights); real data `{args.real}`; "
            f"LeNet held-out accuracy {classifier.accuracy:.1%}"
        ),
        "",
        "| model | sampler | steps | images | FID | floor | precision | recall | s/image | grid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sampler, steps, n in parse_rows(args.rows, args.num_images):
        settings = SamplingSettings(n, args.batch_size, sampler, steps, args.seed)
        start = time.perf_counter()
        images = generate(model, model.metadata, settings)
        seconds = (time.perf_counter() - start) / n
        grid_name = f"grid-{label}-{sampler}-{steps}.png"
        write_png(out / grid_name, make_grid(images[:64], ncols=8))
        np.savez(out / f"samples-{label}-{sampler}-{steps}.npz", arr_0=images)
        report = evaluate(ImageData(images, None, f"{sampler}:{steps}"), real, classifier, seed=args.seed)
        line = (
            f"| {label} | {sampler} | {steps} | {n} | {report.fid:.2f} | {report.fid_floor:.2f} | "
            f"{report.precision:.3f} | {report.recall:.3f} | {seconds:.3f} | [{grid_name}]({grid_name}) |"
        )
        lines.append(line)
        print(line, flush=True)
    table = "\n".join(lines) + "\n"
    (out / f"table-{label}.md").write_text(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
