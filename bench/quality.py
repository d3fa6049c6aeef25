"""Compare sample sets for a decision: FID and KID in both of ``ddpm eval``'s feature spaces, over
several sampling seeds, with the spread, and whether each row differs from the first beyond it.
Not a test.

Each row is a way of sampling (sampler, calls, options) applied to each MODEL; for one seed every
row starts from the same noises (ddpm-run's seeding), so rows differ only in what is compared. Each
(model, row, seed) is sampled with ddpm-run's library (the NumPy samplers of ``generate()``) and the
model's noise prediction from ONNX Runtime (MODEL.onnx, as users run it) or from the same weights in
torch (MODEL.pt, a checkpoint; ``--device cuda`` to make a long table quick), then measured with
``ddpm eval``'s library against the data's test split (``--reference``, as ``ddpm eval``).

    python bench/quality.py A.onnx [B.onnx ...] --real /usr/share/datasets/fashion-mnist --out runs/q \\
        --rows dpm-solver++:20,dpm-solver++-sde:20,ddim:10@500 --seeds 0,1,2 --label my-comparison

A row is ``SAMPLER:STEPS[/OPTION=VALUE...][@NUM_IMAGES]``; options are ``spacing``, ``rho``,
``guidance`` and the sampler's own (``x0``, ``x0_percentile``, ``eta``, ``final``).

Output (also written to OUT/table-LABEL.md, with every figure per seed in OUT/quality-LABEL.json):
each row's mean +- standard deviation over the seeds, and against the first row the difference of
the means, marked "apart" when the rows' ranges over the seeds do not overlap and "inside" when
they do (a difference inside the seed spread is no difference). OUT/compare-LABEL-seedS.png puts the
first 64 images of every row side by side, left to right in table order, all from seed S's noises.

Class-conditional models: a row with ``guidance=W`` draws NUM_IMAGES / K images of each of the K
classes (as ``ddpm-run sample --class all --per-class NUM_IMAGES/K --guidance-scale W``) and adds
the CNN's agreement with the requested class.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddpm_runtime.files import ensure_writable_dir, write_png
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.images import make_grid
from ddpm_training.data import ImageData, load_images
from ddpm_training.evaluation import evaluate, feature_classifier, reference_split
from ddpm_training.evaluation.classifier import NETWORKS

DEFAULT_ROWS = "ddpm:100,ddim:20,dpm-solver++:20,dpm-solver++-sde:20"
GENERATE_FIELDS = ("spacing", "rho", "guidance_scale")
# Columns: (title, network, EvalReport field, scale, decimals)
MEASURES = (
    ("CNN FID", "cnn", "fid", 1.0, 2),
    ("CNN KID x1e3", "cnn", "kid", 1e3, 1),
    ("LeNet FID", "lenet", "fid", 1.0, 2),
)


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


@dataclass
class Row:
    """One (model, sampling) row of the table and its figures per seed."""

    model: str
    name: str
    num_images: int
    figures: dict[str, list[float]] = field(default_factory=dict)  # column title -> one value per seed
    floors: dict[str, float] = field(default_factory=dict)  # column title -> the floor at this n (seed 0's)
    details: list[dict] = field(default_factory=list)  # per seed: both reports, s/image

    def add(self, title: str, value: float) -> None:
        self.figures.setdefault(title, []).append(value)


def mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def versus(base: list[float], other: list[float], decimals: int) -> str:
    """The difference of the means, "apart" when the two ranges over the seeds do not overlap."""
    difference = np.mean(other) - np.mean(base)
    apart = max(other) < min(base) or min(other) > max(base)
    return f"{difference:+.{decimals}f} {'apart' if apart else 'inside'}"


def table_lines(rows: list[Row], seeds: list[int]) -> list[str]:
    titles = [title for title, *_ in MEASURES]
    header = ["model", "row", "n", *titles, *(f"vs first: {t}" for t in titles), "CNN precision / recall"]
    header += ["agreement", "s/image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = rows[0]
    for row in rows:
        cells = [row.model, row.name, str(row.num_images)]
        for title, _, _, _, decimals in MEASURES:
            mean, sd = mean_sd(row.figures[title])
            cells.append(f"{mean:.{decimals}f} +- {sd:.{decimals}f}")
        for title, _, _, _, decimals in MEASURES:
            cells.append("-" if row is base else versus(base.figures[title], row.figures[title], decimals))
        cells.append(f"{np.mean(row.figures['precision']):.3f} / {np.mean(row.figures['recall']):.3f}")
        agreement = row.figures.get("agreement")
        cells.append("-" if agreement is None else f"{100 * np.mean(agreement):.1f}%")
        cells.append(f"{np.mean(row.figures['s/image']):.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    floors = sorted({(row.num_images, tuple(row.floors.items())) for row in rows})
    for n, items in floors:
        lines.append(f"\nfloor at n = {n}: " + ", ".join(f"{title} {value:.2f}" for title, value in items))
    lines.append(f"\nmean +- standard deviation over sampling seeds {', '.join(map(str, seeds))}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="MODEL.onnx files, or checkpoints (.pt) run in torch")
    parser.add_argument("--real", type=Path, required=True, help="labelled real data (ddpm eval --real)")
    parser.add_argument("--reference", choices=("test", "train"), default=None, help="as ddpm eval --reference")
    parser.add_argument("--out", type=Path, default=Path("bench/quality-out"), help="grids and tables go here")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="SAMPLER:STEPS[/OPTION=VALUE...][@N],...")
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2", help="sampling seeds, comma-separated")
    parser.add_argument("--seed", type=int, default=None, help="one sampling seed (same as --seeds S)")
    parser.add_argument("--device", default="cpu", help="torch device for a checkpoint (cpu, cuda)")
    parser.add_argument("--weights", default="ema", help="a checkpoint's weights to sample: ema or raw")
    parser.add_argument("--no-samples", action="store_true", help="do not keep each row's samples.npz")
    parser.add_argument("--label", default=None, help="names the output files (default: the first model's folder)")
    args = parser.parse_args()

    seeds = [args.seed] if args.seed is not None else [int(s) for s in args.seeds.split(",")]
    out = ensure_writable_dir(args.out)
    label = args.label or args.models[0].resolve().parent.name
    real = load_images(args.real)
    test = reference_split(args.real, args.reference)
    classifiers = {network: feature_classifier(real, network=network) for network in NETWORKS}
    specs = [parse_row(item, args.num_images) for item in args.rows.split(",")]
    rows, intro = [], []
    grids: dict[int, list[np.ndarray]] = {seed: [] for seed in seeds}
    for path in args.models:
        eps_model, metadata = eps_model_for(path, args.device, args.weights)
        model_label = path.resolve().parent.name if len(args.models) == 1 else f"{path.parent.name}/{path.stem}"
        intro.append(
            f"model `{path}` ({metadata.training.get('steps')} training steps, "
            f"{'EMA' if metadata.training.get('ema') else 'raw'} weights, eps from "
            f"{'ONNX Runtime' if path.suffix == '.onnx' else 'torch on ' + args.device})"
        )
        for name, spec in specs:
            row = Row(model_label, name, spec.num_images)
            for seed in seeds:
                measure(row, eps_model, metadata, spec, name, seed, args, real, test, classifiers, out, label, grids)
            rows.append(row)
            print(f"{model_label} {name}: " + table_lines([row], seeds)[2], flush=True)
            table = write_outputs(out, label, intro, rows, seeds, grids, args.real, test, classifiers)
    print("\n" + table)


def write_outputs(out, label, intro, rows, seeds, grids, real_path, test, classifiers) -> str:
    """The table, the JSON and the grids of the rows so far (written after each row: a long comparison
    that stops keeps what it measured)."""
    reference = "the test split" if test is not None else "the labelled data (--reference train)"
    accuracy = f"held-out accuracy CNN {classifiers['cnn'].accuracy:.1%}, LeNet {classifiers['lenet'].accuracy:.1%}"
    heading = [*intro, f"real data `{real_path}`, reference: {reference}; {accuracy}"]
    for seed, columns in grids.items():
        write_png(out / f"compare-{label}-seed{seed}.png", side_by_side(columns))
    table = "\n".join(["; ".join(heading), "", *table_lines(rows, seeds)]) + "\n"
    (out / f"table-{label}.md").write_text(table)
    document = [{"model": r.model, "row": r.name, "num_images": r.num_images, "seeds": r.details} for r in rows]
    (out / f"quality-{label}.json").write_text(json.dumps({"seeds": seeds, "rows": document}, indent=1))
    return table


def measure(row, eps_model, metadata, spec, name, seed, args, real, test, classifiers, out, label, grids) -> None:
    """Sample one row with one seed, measure it in both spaces, and keep its figures and grid."""
    settings = SamplingSettings(**{**spec.__dict__, "batch_size": args.batch_size, "seed": seed})
    labels, columns = class_labels(name, metadata, settings.num_images)
    settings = SamplingSettings(**{**settings.__dict__, "labels": labels})
    start = time.perf_counter()
    images = generate(eps_model, metadata, settings)
    row.add("s/image", (time.perf_counter() - start) / settings.num_images)
    shown = images[:64] if labels is None else images.reshape(-1, columns, *images.shape[1:])[:, :8]
    grids[seed].append(make_grid(shown.reshape(-1, *images.shape[1:])[:64], ncols=8))
    slug = f"{row.model}-{name}".replace(":", "-").replace("/", "-").replace("=", "")
    if not args.no_samples:
        arrays = {"arr_0": images}
        if labels is not None:  # as ddpm-run sample --class writes them
            arrays.update(labels=np.asarray(labels), class_names=np.array(metadata.classes.names, dtype=str))
        np.savez(out / f"samples-{label}-{slug}-seed{seed}.npz", **arrays)
    sample_labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    data = ImageData(images, sample_labels, name)
    reports = {net: evaluate(data, real, c, test=test) for net, c in classifiers.items()}
    for title, network, key, scale, _ in MEASURES:
        row.add(title, scale * getattr(reports[network], key))
        row.floors[title] = scale * getattr(reports[network], f"{key}_floor")
    # k-NN precision and recall (Kynkaanniemi et al. 2019) in the CNN's features: guidance trades recall away
    row.add("precision", reports["cnn"].precision)
    row.add("recall", reports["cnn"].recall)
    if reports["cnn"].class_agreement is not None:
        row.add("agreement", reports["cnn"].class_agreement)
    row.details.append({"seed": seed, **{net: r.to_dict() for net, r in reports.items()}})


def side_by_side(grids: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """The rows' grids left to right, a white bar between them."""
    height = max(grid.shape[0] for grid in grids)
    channels = grids[0].shape[2]
    parts = []
    for grid in grids:
        padded = np.zeros((height, grid.shape[1], channels), np.uint8)
        padded[: grid.shape[0]] = grid
        parts += [padded, np.full((height, gap, channels), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


if __name__ == "__main__":
    main()
