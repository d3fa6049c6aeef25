"""Generator files of a trained model against ddpm-run's samplers: for each row, the generator's images
and the runtime sampler's on the model file from the same float32 noise (the export gate's comparison,
with more images), the file's size against the model file's, and the time to open it. Not a test.

    python bench/generator_check.py runs/NAME/model.onnx --images 64 \
        --rows "dpm-solver++-sde:20,dpm-solver++:20,ddpm:10,ddim:10/eta=0.5,ddim:10/x0=dynamic,consistency:4"

A row is ``SAMPLER:STEPS[/OPTION=VALUE...]`` as in bench/quality.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ddpm_export.generator import GeneratorRequest, build_generator
from ddpm_export.generator.gate import compare
from ddpm_runtime.generator_model import load_generator
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_runtime.samplers import all_options


def parse_row(row: str) -> GeneratorRequest:
    sampler_steps, *pairs = row.split("/")
    sampler, _, steps = sampler_steps.partition(":")
    known = all_options()
    options = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        default = known[name].default
        options[name] = type(default)(value) if not isinstance(default, str) else value
    return GeneratorRequest(sampler=sampler, steps=int(steps), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", default="dpm-solver++-sde:20")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_onnx_model(args.model, "cpu", threads=1)
    size = args.model.stat().st_size
    print(f"{args.model}: {size / 1e6:.2f} MB; {args.images} images per row, noise seed {args.seed}\n")
    print("| row | draws | file vs model | open (1 session) | pixels equal | largest difference |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.rows.split(","):
            proto, entry = build_generator(args.model, parse_row(row))
            path = Path(tmp) / "generator.onnx"
            path.write_bytes(proto.SerializeToString())
            start = time.perf_counter()
            generator = load_generator(path, "cpu", threads=1)
            opened = time.perf_counter() - start
            report = compare(model, generator, args.images, args.seed)
            print(
                f"| {row} | {entry.noise_draws} | {path.stat().st_size / size:.3f}x | {opened:.2f} s | "
                f"{report.equal:.4%} | {report.max_difference} |"
            )


if __name__ == "__main__":
    main()
