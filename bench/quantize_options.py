"""8-bit recipes side by side: file size, the image gate's pixel difference and speed against float32.

For one model file (``ddpm export-onnx``), every recipe of ``RECIPES`` (or those named with --recipes)
is quantized with ``ddpm quantize``'s own code (gate limit lifted, so a bad recipe is measured rather
than refused). Then, in alternating rounds in this one process: one forward (x, t[, y]) at batch 8
and 64 in a session with one thread and with a thread per core, and ``ddpm-run sample``'s own path
(the model's default sampler, rows split over single-threaded sessions, batch 8 and 64; and one
single-threaded session at batch 8). Printed as
a Markdown table under a header naming the machine (bench/machine.py).

    python bench/quantize_options.py runs/NAME/model.onnx [--recipes default,all-ops] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from machine import describe, matmul_peak_gflops, physical_cores  # bench/ is on sys.path as a script

from ddpm_export.quantize import quantize_model
from ddpm_export.quantize.recipe import DEFAULT_RECIPE, Recipe
from ddpm_runtime import contract
from ddpm_runtime.generate import SamplingSettings, generate, model_defaults
from ddpm_runtime.onnx_model import load_onnx_model

RECIPES = {
    "default": DEFAULT_RECIPE,
    "input conv quantized": Recipe(keep_input_convolution=False),
    "last concat conv quantized": Recipe(keep_last_concat_convolution=False),
    "output conv kept": Recipe(keep_output_convolution=True),
    "last up block quantized": Recipe(keep_last_up_block=False),
    "concat convs kept": Recipe(keep_concat_convolutions=True),
    "no ConvTranspose": Recipe(operators=("Conv", "MatMul", "Gemm")),
    "convolutions only": Recipe(operators=("Conv",)),
    "Gemm kept float32": Recipe(operators=("Conv", "ConvTranspose", "MatMul")),
    "additions quantized too": Recipe(operators=("Conv", "ConvTranspose", "MatMul", "Gemm", "Add")),
    "minmax": Recipe(method="minmax"),
    "entropy": Recipe(method="entropy"),
    "s8 activations": Recipe(activations="s8"),
    "fp16": None,  # --mode fp16
}


def forward_feeds(model, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = model.metadata.image
    x = rng.standard_normal((batch, image.channels, image.height, image.width)).astype(np.float32)
    t = np.full(batch, 500.0)
    y = None if model.metadata.classes is None else np.arange(batch) % model.metadata.classes.num_classes
    return contract.feeds(x, t, y)


def kernel_times(path: Path, batch: int, runs: int = 10) -> dict[str, float]:
    """Median microseconds per run by operator type, from ONNX Runtime's profiler (one thread)."""
    import json
    from collections import defaultdict

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = forward_feeds(load_onnx_model(path, "cpu", threads=1), batch)
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["args"]["op_name"], event["name"]].append(event["dur"])
    totals: dict[str, float] = defaultdict(float)
    for (op, _), durations in per_node.items():
        totals[op] += statistics.median(durations[1:] or durations)  # the first run warms up
    return dict(totals)


def amdahl(model: Path, int8: Path | None) -> None:
    """What share of float32's kernel time the quantized operators take, and the speed-up int8 could
    reach if they cost nothing (or, with an int8 file, if only they changed, at their measured gain)."""
    print(
        "\n| batch | float32 kernels (ms) | of which Conv, ConvTranspose, MatMul, Gemm (incl. fused) | "
        "bound if they cost 0 | int8 kernels (ms) | of which integer kernels | of which QuantizeLinear, "
        "DequantizeLinear, Transpose |"
    )
    print("|---|---|---|---|---|---|---|")
    quantizable = ("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedMatMul", "FusedConv", "FusedGemm")
    integer = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearConcat")
    conversions = ("QuantizeLinear", "DequantizeLinear", "Transpose")
    per_batch = {}
    for batch in (8, 64):
        times = kernel_times(model, batch)
        q = kernel_times(int8, batch) if int8 is not None else None
        per_batch[batch] = (times, q)
        total, share = sum(times.values()), sum(v for k, v in times.items() if k in quantizable)
        cells = [f"{total / 1e3:.1f}", f"{share / 1e3:.1f} ({share / total:.0%})", f"{total / (total - share):.2f}x"]
        if q is not None:
            q_total = sum(q.values())
            cells.append(f"{q_total / 1e3:.1f}")
            for kinds in (integer, conversions):
                part = sum(v for k, v in q.items() if k in kinds)
                cells.append(f"{part / 1e3:.1f} ({part / q_total:.0%})")
        else:
            cells += ["-", "-", "-"]
        print(f"| {batch} | " + " | ".join(cells) + " |")
    for batch, (times, q) in per_batch.items():
        if q is not None:
            operator_table(batch, times, q)


def operator_table(batch: int, float32: dict[str, float], int8: dict[str, float], rows: int = 16) -> None:
    """The operator types that take the most kernel time in either file, side by side (ms per forward)."""
    print(f"\nbatch {batch}, one thread: kernel time by operator type (ms)\n")
    print("| operator | float32 | int8 |")
    print("|---|---|---|")
    ranked = sorted(set(float32) | set(int8), key=lambda op: -max(float32.get(op, 0.0), int8.get(op, 0.0)))
    for op in ranked[:rows]:
        cells = [f"{table[op] / 1e3:.2f}" if op in table else "-" for table in (float32, int8)]
        print(f"| {op} | " + " | ".join(cells) + " |")


def timed(run, repeats: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names of RECIPES")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=64, help="images per ddpm-run sample loop and round")
    parser.add_argument("--no-speed", action="store_true", help="sizes and gate differences only")
    parser.add_argument("--out", type=Path, default=None, help="keep the quantized files here")
    parser.add_argument("--profile", action="store_true", help="also the kernel-time shares (ONNX Runtime's profiler)")
    args = parser.parse_args()
    names = [name.strip() for name in args.recipes.split(",")]
    cores = physical_cores()
    print(describe(matmul_peak_gflops()))
    print(f"model: {args.model} ({args.model.stat().st_size / 1e6:.2f} MB)\n")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths, rows = {"float32": args.model}, {"float32": {"size": args.model.stat().st_size, "gate": "-"}}
        for name in names:
            path = folder / f"{name.replace(' ', '-')}.onnx"
            try:
                result = quantize_model(
                    args.model,
                    path,
                    mode="int8" if RECIPES[name] else "fp16",
                    max_image_diff=float("inf"),
                    overwrite=True,
                    recipe=RECIPES[name] or DEFAULT_RECIPE,
                )
            except Exception as exc:  # a recipe ONNX Runtime cannot build or load is a finding, not a crash
                rows[name] = {"size": None, "gate": f"fails: {str(exc).splitlines()[0][:90]}"}
                continue
            paths[name] = path
            rows[name] = {"size": result.size_bytes, "gate": f"{result.report.mean_difference:.2f}"}
            print(f"{name}: {result.report.describe()}", flush=True)

        timings: dict[str, dict[str, list[float]]] = {name: {} for name in paths}
        if not args.no_speed:
            loops = {}
            for name, path in paths.items():
                one = load_onnx_model(path, "cpu", threads=1)
                many = load_onnx_model(path, "cpu", threads=cores)
                split = load_onnx_model(path, "cpu")
                sampler, steps, options = model_defaults(split.metadata, None, None)
                for batch in (8, 64):
                    feeds = forward_feeds(one, batch)
                    loops[name, f"forward b{batch}, 1 thread (ms)"] = (
                        lambda s=one.session, f=feeds: s.run(None, f),
                        1e3,
                        max(2, 40 // batch),
                    )
                    loops[name, f"forward b{batch}, {cores} threads (ms)"] = (
                        lambda s=many.session, f=feeds: s.run(None, f),
                        1e3,
                        max(2, 40 // batch),
                    )
                    settings = SamplingSettings(
                        num_images=args.images, batch_size=batch, sampler=sampler, steps=steps, options=options
                    )
                    if split.metadata.classes is not None:
                        settings = replace(settings, labels=(0,) * args.images)
                    loops[name, f"ddpm-run sample b{batch} (s/image)"] = (
                        lambda m=split, s=settings: generate(m, m.metadata, s),
                        1.0 / args.images,
                        1,
                    )
                    if batch == 8:
                        loops[name, "sample b8, 1 thread (s/image)"] = (
                            lambda m=one, s=settings: generate(m, m.metadata, s),
                            1.0 / args.images,
                            1,
                        )
            for _ in range(args.rounds):
                for (name, what), (run, scale, repeats) in loops.items():
                    timings[name].setdefault(what, []).append(timed(run, repeats) * scale)

        columns = list(next(iter(timings.values())).keys())
        print("\n| " + " | ".join(["recipe", "file", "gate (grey levels)", *columns]) + " |")
        print("|---" * (3 + len(columns)) + "|")
        for name, row in rows.items():
            size, base_size = row["size"], rows["float32"]["size"]
            size = "-" if size is None else f"{size / 1e6:.2f} MB ({size / base_size:.2f}x)"
            cells = []
            for what in columns:
                if name not in timings or what not in timings[name]:
                    cells.append("-")
                    continue
                value = statistics.median(timings[name][what])
                base = statistics.median(timings["float32"][what])
                cells.append(f"{value:.4g}" + ("" if name == "float32" else f" ({base / value:.2f}x)"))
            print("| " + " | ".join([name, size, row["gate"], *cells]) + " |")
        print(f"\nmedian of {args.rounds} alternating rounds; (N x): float32's time / this recipe's, i.e. its speed-up")
        if args.profile:
            amdahl(args.model, paths.get("default"))


if __name__ == "__main__":
    main()
