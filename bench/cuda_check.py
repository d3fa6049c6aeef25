"""The CUDA paths, for a machine with an NVIDIA GPU (never part of the tests; CI has no GPU).

1. The exported ONNX model against the same weights in eager PyTorch on the GPU (TF32 off and on),
   batch 1, 3 and 64, the parity gate's timesteps: what a user sees who trains on a GPU and samples
   with ddpm-run on a CPU.
2. ONNX Runtime's CUDAExecutionProvider through ddpm-run's own loader (``--device cuda``), when the
   installed onnxruntime offers it; against the CPU provider on the same inputs.
3. Sampling throughput: the runtime's NumPy sampler driving the torch model on the GPU.

    python bench/cuda_check.py runs/NAME/checkpoint.pt --onnx runs/NAME/model.onnx
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ddpm_export.parity import check_parity
from ddpm_export.source import load_source
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_training.diffusion.torch_eps import numpy_eps_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--onnx", type=Path, required=True, help="the checkpoint exported by ddpm export-onnx")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch")

    source = load_source(args.checkpoint)
    cfg = source.model_config
    shape = (cfg.im_channels, cfg.image_size, cfg.image_size)
    T = source.schedule.num_timesteps
    onnx_cpu = load_onnx_model(args.onnx, "cpu")
    gpu_model = source.model.to("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, model {cfg.down_ch}, step {source.step}")

    print("\n1. eager PyTorch on CUDA vs the ONNX file on ONNX Runtime (CPU provider)")
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        report = check_parity(numpy_eps_model(gpu_model, "cuda"), onnx_cpu, shape, T, args.atol)
        print(
            f"TF32 {'on ' if tf32 else 'off'}: worst max-abs {report.worst.max_abs:.2e} "
            f"({report.worst.timesteps}, batch {report.worst.batch}); within {args.atol:g}: {report.passed}"
        )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    print("\n2. ONNX Runtime CUDAExecutionProvider")
    try:
        onnx_cuda = load_onnx_model(args.onnx, "cuda")
    except Exception as exc:  # a UserError: no CUDA provider in this onnxruntime
        print(f"not run: {exc}")
    else:
        report = check_parity(onnx_cpu, onnx_cuda, shape, T, args.atol)
        print(f"provider {onnx_cuda.provider}: worst max-abs vs CPU provider {report.worst.max_abs:.2e}")

    print("\n3. NumPy sampler + torch model on CUDA (dpm-solver++, 20 steps)")
    eps = numpy_eps_model(gpu_model, "cuda")
    for batch in (64, 1000):
        settings = SamplingSettings(num_images=batch, batch_size=batch, sampler="dpm-solver++", steps=20, seed=0)
        generate(eps, onnx_cpu.metadata, settings)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        generate(eps, onnx_cpu.metadata, settings)
        seconds = time.perf_counter() - start
        print(f"batch {batch}: {seconds:.2f} s, {batch / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
