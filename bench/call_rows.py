"""Rows per call: ``ddpm-run sample``'s speed as each session runs its share of a batch in calls of at
most K rows (runtime row_split.py, ``CALL_ROWS``), for each model file given, at batch 8 and 64.

Alternating rounds in this one process, the model's default sampler, rows split over one
single-threaded session per physical core as ``ddpm-run`` does; K = 0 means a share in one call (the
runtime before ``CALL_ROWS``). Printed as seconds per image and as the speed against K = 0, under a
header naming the machine (bench/machine.py).

    python bench/call_rows.py runs/NAME/model.onnx [runs/NAME/model-int8.onnx] [--rows 0,2,4,8,16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

from machine import describe, matmul_peak_gflops  # bench/ is on sys.path as a script

from ddpm_runtime import row_split
from ddpm_runtime.generate import SamplingSettings, generate, model_defaults
from ddpm_runtime.onnx_model import load_onnx_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--rows", default="0,2,4,8,16", help="values of CALL_ROWS to compare (0: no limit)")
    parser.add_argument("--batches", default="8,64")
    parser.add_argument("--images", type=int, default=64, help="images per loop and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    limits = [int(value) for value in args.rows.split(",")]
    batches = [int(value) for value in args.batches.split(",")]
    print(describe(matmul_peak_gflops()))

    loops = {}
    for path in args.models:
        model = load_onnx_model(path, "cpu")
        sampler, steps, options = model_defaults(model.metadata, None, None)
        for batch in batches:
            settings = SamplingSettings(
                num_images=args.images, batch_size=batch, sampler=sampler, steps=steps, options=options
            )
            if model.metadata.classes is not None:
                settings = replace(settings, labels=(0,) * args.images)
            for limit in limits:
                loops[path.name, batch, limit] = (model, settings)
    times: dict[tuple, list[float]] = {key: [] for key in loops}
    for _ in range(args.rounds):
        for key, (model, settings) in loops.items():
            row_split.CALL_ROWS = key[2] or 1 << 30
            start = time.perf_counter()
            generate(model, model.metadata, settings)
            times[key].append((time.perf_counter() - start) / args.images)

    print(f"\n{len(args.models)} file(s), median of {args.rounds} rounds, {args.images} images per loop")
    print("\n| file | batch | rows per call | s/image | vs one call per share |")
    print("|---|---|---|---|---|")
    for (name, batch, limit), values in times.items():
        seconds = statistics.median(values)
        whole = statistics.median(times[name, batch, limits[0] if 0 not in limits else 0])
        label = "one call per share" if limit == 0 else str(limit)
        print(f"| {name} | {batch} | {label} | {seconds:.4f} | {whole / seconds:.2f}x |")


if __name__ == "__main__":
    main()
