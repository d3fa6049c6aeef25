"""What the integrity checks cost: the checkpoint digest on resume and on each checkpoint write, and the
weights digest when ddpm-run opens a model, each against the same operation without the check, in
alternating rounds in one process (median of --rounds).

    python bench/integrity_cost.py runs/NAME/checkpoint.pt runs/NAME/model.onnx

The checkpoint is re-saved with a digest and the model re-exported with one (into a temporary folder),
so files written by earlier versions serve too.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import describe, matmul_peak_gflops  # bench/ is on sys.path as a script

from ddpm_runtime import contract
from ddpm_runtime.external_data import weights_sha256
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_training.digest import content_digest
from ddpm_training.train.checkpoint import load_checkpoint, save_checkpoint
from ddpm_training.train.run_folder import RunFolder


def timed(function, rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(describe(matmul_peak_gflops()))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        state = {k: v for k, v in load_checkpoint(args.checkpoint).items() if k not in ("format", "format_version")}
        state.pop("sha256", None)
        checkpoint = folder / "checkpoint.pt"
        save_checkpoint(checkpoint, state)
        size = checkpoint.stat().st_size / 1e6
        rows = [
            ("checkpoint read, torch.load alone", lambda: torch.load(checkpoint, weights_only=True)),
            ("checkpoint read, load_checkpoint (digest checked)", lambda: load_checkpoint(checkpoint)),
            ("content_digest alone", lambda: content_digest(state)),
            ("checkpoint write, save_checkpoint (digest made)", lambda: save_checkpoint(folder / "plain.pt", state)),
        ]
        run = RunFolder(folder / "run")
        run.folder.mkdir()
        steps = iter(range(1, 10**6))
        rows.append(
            (
                "checkpoint write as a run does (+ previous kept, read back)",
                lambda: run.write_checkpoint(state, next(steps), keep_last=2),
            )
        )
        model = folder / "model.onnx"
        shutil.copy(args.model, model)
        metadata = load_onnx_model(model, "cpu").metadata
        has_digest = contract.WEIGHTS_DIGEST_KEY in metadata.exporter
        data = model.read_bytes()
        rows += [
            ("model open, load_onnx_model", lambda: load_onnx_model(model, "cpu")),
            ("weights_sha256 alone", lambda: weights_sha256(data)),
        ]
        megabytes = len(data) / 1e6
        print(f"checkpoint {size:.1f} MB, model {megabytes:.1f} MB (weights digest in its metadata: {has_digest})")
        for name, function in rows:
            function()  # warm-up: the page cache, ONNX Runtime's first session
            print(f"{name:<62} {1000 * timed(function, args.rounds):8.1f} ms")


if __name__ == "__main__":
    main()
