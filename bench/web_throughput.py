"""Sampling in the browser against ddpm-run on the same machine: seconds per image.

Builds the site `ddpm-run web` writes for MODEL, serves it on a local port, and drives the page in Debian's
chromium (headless, tests/web/browser_page.mjs): WebAssembly single-threaded (served as
`python -m http.server` serves it), WebAssembly with threads (served as `ddpm-run serve` serves it, so the
page is cross-origin isolated), and, with --webgpu, the WebGPU backend on a model exported with
`ddpm export-onnx --target web` (on a machine without a GPU chromium's WebGPU is SwiftShader, software
Vulkan on the CPU: that row says what the code path does, not what a GPU does). Then ddpm-run's own
loop (NumPy sampler + ONNX Runtime) with 1 thread and with one per physical core. Same sampler, calls,
seed and batch everywhere; the page's images are checked against ddpm-run's (at most one grey level).

    python bench/web_throughput.py runs/NAME/model.onnx --screenshot docs/web/page.png
    python bench/web_throughput.py runs/NAME/model.onnx --webgpu runs/NAME/model-web.onnx --webgpu-images 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe, matmul_peak_gflops, physical_cores  # bench/ is on sys.path as a script

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # what browser_page.mjs launches
sys.path.insert(0, str(ROOT / "tests" / "web"))
from page_helpers import build, drive, start_server  # noqa: E402 - the browser driver the tests use

from ddpm_runtime.generate import SamplingSettings, generate  # noqa: E402
from ddpm_runtime.onnx_model import load_onnx_model  # noqa: E402
from ddpm_runtime.web_server import site_url  # noqa: E402


def page_run(site: Path, isolated: bool, query: str, fields: dict, screenshot: Path | None = None, webgpu=False):
    server = start_server(site, isolated)
    try:
        request = {"generate": True, "fields": fields, "webgpu": webgpu}
        if screenshot is not None:
            request["screenshot"] = str(screenshot)
        result = drive(site_url(server) + "index.html" + query, **request)
    finally:
        server.shutdown()
        server.server_close()
    status = result["status"]
    if not status.get("done"):
        raise SystemExit(f"the page did not finish: {status} {result['shownError']} {result['consoleErrors'][:3]}")
    return status


def max_grey_difference(status: dict, expected: np.ndarray) -> str:
    """The largest and the mean difference from ``expected``'s pixels, in grey levels."""
    n, h, w, c = expected.shape
    got = np.asarray(status["pixels"], dtype=np.uint8).reshape(n, c, h, w).transpose(0, 2, 3, 1)
    difference = np.abs(got.astype(int) - expected.astype(int))
    return f"{difference.max()} (mean {difference.mean():.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="model calls per image")
    parser.add_argument("--sampler", default="dpm-solver++-sde")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--screenshot", type=Path, default=None, help="the threaded page, after its first round")
    parser.add_argument("--webgpu", type=Path, default=None, help="a --target web export of the same checkpoint")
    parser.add_argument("--webgpu-images", type=int, default=2)
    args = parser.parse_args()

    peak = matmul_peak_gflops()
    cores = physical_cores()
    settings = SamplingSettings(
        num_images=args.images, batch_size=16, sampler=args.sampler, steps=args.steps, seed=args.seed
    )
    fields = {"count": args.images, "seed": args.seed, "steps": args.steps, "sampler": args.sampler}
    rows: dict[str, list[float]] = {}
    checks: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        site = build(args.model, tmp / "site")
        expected = generate(load_onnx_model(args.model, "cpu"), load_onnx_model(args.model, "cpu").metadata, settings)
        loops = {
            f"ddpm-run sample, {n} thread(s), batch 16": (load_onnx_model(args.model, "cpu", threads=n), settings)
            for n in sorted({1, cores})
        }
        default = load_onnx_model(args.model, "cpu")  # rows over one 1-thread session per core, batch 8
        loops[f"ddpm-run sample as it runs by default (batch 8, rows over {cores} sessions)"] = (
            default,
            SamplingSettings(num_images=args.images, sampler=args.sampler, steps=args.steps, seed=args.seed),
        )
        for round_index in range(args.rounds):
            for name, (model, loop_settings) in loops.items():
                start = time.perf_counter()
                generate(model, model.metadata, loop_settings)
                rows.setdefault(name, []).append((time.perf_counter() - start) / args.images)
            status = page_run(site, False, "", fields)
            rows.setdefault("page, WebAssembly, 1 thread (python -m http.server)", []).append(status["secondsPerImage"])
            checks["page, 1 thread"] = max_grey_difference(status, expected)
            shot = args.screenshot if round_index == 0 else None
            status = page_run(site, True, f"?threads={cores}", fields, shot)
            assert status["isolated"] and status["threads"] == cores, status
            name = f"page, WebAssembly, {cores} threads (ddpm-run serve)"
            rows.setdefault(name, []).append(status["secondsPerImage"])
            checks[f"page, {cores} threads"] = max_grey_difference(status, expected)
        if args.webgpu is not None:
            web_site = build(args.webgpu, tmp / "web-site")
            web_fields = {**fields, "count": args.webgpu_images, "backend": "webgpu"}
            status = page_run(web_site, True, f"?threads={cores}", fields)
            rows[f"page, WebAssembly, {cores} threads, --target web export"] = [status["secondsPerImage"]]
            status = page_run(web_site, False, "", web_fields, webgpu=True)
            rows[f"page, WebGPU, {args.webgpu_images} image(s), --target web export"] = [status["secondsPerImage"]]
            web = load_onnx_model(args.webgpu, "cpu")
            web_expected = generate(
                web,
                web.metadata,
                SamplingSettings(num_images=args.webgpu_images, batch_size=16, sampler=args.sampler, steps=args.steps),
            )
            checks["page, WebGPU"] = max_grey_difference(status, web_expected)

    print(describe(peak))
    browser = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    size = args.model.stat().st_size / 1e6
    print(f"{browser} (headless); model {args.model} ({size:.1f} MB)")
    print(
        f"{args.images} images, {args.sampler}, {args.steps} model calls each, seed {args.seed}, batch 16; "
        f"median of {args.rounds} rounds\n"
    )
    baseline = statistics.median(rows[f"ddpm-run sample, {cores} thread(s), batch 16"])
    print(f"{'loop':74s} {'s/image':>8s} {'vs ddpm-run':>12s}")
    for name, values in rows.items():
        per_image = statistics.median(values)
        print(f"{name:74s} {per_image:8.3f} {per_image / baseline:11.1f}x")
    print(
        "\nlargest difference from ddpm-run's images, grey levels: " + ", ".join(f"{k} {v}" for k, v in checks.items())
    )


if __name__ == "__main__":
    main()
