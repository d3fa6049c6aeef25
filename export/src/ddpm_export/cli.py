"""`ddpm export-onnx` and `ddpm export-torchscript` (added to `ddpm` through the ddpm.commands entry points).

Exit codes: 0 exported and kept; 1 the parity gate failed (no file written); 2 bad input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ddpm_runtime.cli import sampler_options
from ddpm_runtime.schedule_fit import DEFAULT_IMAGES, DEFAULT_SAMPLER

from .errors import ExportError
from .gate import DEFAULT_ATOL
from .onnx_export import TARGET_OPSETS
from .source import WEIGHTS


def _common(func):
    func = click.option(
        "--no-check",
        "check",
        flag_value=False,
        help="Skip the parity gate (not recommended: a broken export would be kept).",
    )(func)
    func = click.option(
        "--check",
        "check",
        flag_value=True,
        default=True,
        help="Compare with PyTorch on batch 1, 3, 64 and t = 0, 1, T/2, T-1, per row; "
        "keep the file only if every max-abs error is within --atol.  [default]",
    )(func)
    func = click.option(
        "--atol",
        type=float,
        default=DEFAULT_ATOL,
        show_default=True,
        help="Parity tolerance: the largest allowed max-abs difference of eps (float32).",
    )(func)
    func = click.option(
        "--overwrite",
        is_flag=True,
        help="Replace an existing output file (never the checkpoint being exported).",
    )(func)
    func = click.option(
        "--weights",
        type=click.Choice(WEIGHTS),
        default=WEIGHTS[0],
        show_default=True,
        help="Export the EMA of the weights (what sampling should use) or the raw weights.",
    )(func)
    func = click.option(
        "-o",
        "--output",
        "output",
        type=click.Path(path_type=Path),
        required=True,
        help="The model file to write (atomically; nothing is written if a check fails).",
    )(func)
    func = click.argument("checkpoint", type=click.Path(path_type=Path))(func)
    return func


def _finish(ctx: click.Context, run, kept: str | None = None) -> None:
    """Run an export; ``kept``: the line to print instead of 'wrote PATH' (the file is not the result)."""
    from .errors import ParityError

    try:
        result = run()
    except ParityError as exc:
        click.echo(exc.report.table())
        click.echo(f"error: parity check failed: {exc}", err=True)
        ctx.exit(1)
    if result.report is not None:
        click.echo(result.report.table())
    else:
        click.echo("parity check skipped (--no-check)")
    click.echo(kept or f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB)")


def _quantize_options(func):
    """The options ``ddpm quantize`` and ``ddpm export-onnx --quantize`` share."""
    func = click.option(
        "--max-class-change",
        type=float,
        default=None,
        help="The gate with --real: the largest share of its images whose class (ddpm eval's CNN) differs "
        "from the float32 model's.  [default: 0.25]",
    )(func)
    func = click.option(
        "--real",
        type=click.Path(path_type=Path),
        default=None,
        help="Labelled real data (any format ddpm train reads): the gate then also compares the classes "
        "ddpm eval's CNN (trained on it, or from its cache) sees in both models' images.",
    )(func)
    func = click.option(
        "--max-image-diff",
        type=float,
        default=None,
        help="The gate: the largest mean absolute pixel difference (grey levels) from the float32 model's "
        "images for the same noise.  [default: 8 for int8, 0.5 for fp16]",
    )(func)
    func = click.option(
        "--calibration-images",
        type=int,
        default=None,
        help="Starting noises whose default-sampler trajectories calibrate the activation ranges.  [default: 32]",
    )(func)
    return func


def _quantize(ctx, model, output, mode, calibration_images, max_image_diff, real, max_class_change, overwrite):
    """Run ``quantize_model`` with the command's options: exit 1 with one line when the gate refuses."""
    from .quantize import (
        DEFAULT_CALIBRATION_IMAGES,
        DEFAULT_MAX_CLASS_CHANGE,
        QuantizationRejected,
        quantize_model,
    )

    def on_epoch(epoch, accuracy):
        click.echo(f"training ddpm eval's CNN on {real}: epoch {epoch}, held-out accuracy {accuracy:.1%}", err=True)

    options = {
        "calibration_images": DEFAULT_CALIBRATION_IMAGES if calibration_images is None else calibration_images,
        "max_image_diff": max_image_diff,
        "max_class_change": DEFAULT_MAX_CLASS_CHANGE if max_class_change is None else max_class_change,
        "real": real,
        "on_classifier_epoch": on_epoch,
        "overwrite": overwrite,
    }
    try:
        result = quantize_model(model, output, mode, **options)
    except QuantizationRejected as exc:
        click.echo(f"error: quantization rejected: {exc}", err=True)
        ctx.exit(1)
    calibrated = f"calibrated on {result.calibration_batches} model calls; " if result.calibration_batches else ""
    click.echo(f"{calibrated}{result.report.describe()}")
    ratio = result.size_bytes / result.model_size_bytes
    click.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {ratio:.2f}x the model file)")


@click.command("export-onnx")
@_common
@click.option(
    "--target",
    type=click.Choice(sorted(TARGET_OPSETS)),
    default="cpu",
    show_default=True,
    help="Where the model runs: 'cpu' (ONNX Runtime: opset 23, fused Attention) or 'web' (onnxruntime-web, "
    "WebGPU and WebAssembly: opset 21, which the WebGPU backend runs without falling back to the CPU).",
)
@click.option("--opset", type=int, default=None, help="ONNX opset version  [default: the --target's]")
@click.option(
    "--quantize",
    "quantize_mode",
    default=None,
    help="Write an int8 or fp16 model instead, as `ddpm quantize --mode` makes from the float32 export, which "
    "must pass the parity gate first and is not kept; the --calibration-images, --max-image-diff, --real "
    "and --max-class-change options are ddpm quantize's.",
)
@_quantize_options
@click.pass_context
def export_onnx_command(
    ctx,
    checkpoint,
    output,
    overwrite,
    weights,
    atol,
    check,
    target,
    opset,
    quantize_mode,
    calibration_images,
    max_image_diff,
    real,
    max_class_change,
) -> None:
    """Export CHECKPOINT's U-Net to ONNX: inputs x [batch, C, H, W] and t [batch] (float32), output eps.

    The model carries its schedule and metadata (metadata_props key 'ddpm'), passes
    onnx.checker (full_check) and is compared with PyTorch in ONNX Runtime before it is kept.
    """
    from .onnx_export import export_onnx
    from .outputs import prepare_output
    from .source import load_source

    options = {"atol": atol, "check": check, "overwrite": overwrite, "target": target, "opset": opset}
    quantize_options = (calibration_images, max_image_diff, real, max_class_change)
    if quantize_mode is None:
        if any(option is not None for option in quantize_options):
            raise ExportError("--calibration-images, --max-image-diff, --real and --max-class-change need --quantize")
        _finish(ctx, lambda: export_onnx(load_source(checkpoint, weights), output, **options))
        return
    from .quantize import check_quantize_options

    check_quantize_options(quantize_mode, calibration_images, max_image_diff, max_class_change)
    if not check:
        raise ExportError("--quantize needs the parity gate: the float32 export it starts from must pass it")
    output = prepare_output(output, "model-int8.onnx", checkpoint, overwrite)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        float32 = Path(tmp) / "float32.onnx"
        _finish(ctx, lambda: export_onnx(load_source(checkpoint, weights), float32, **options), "float32 export passed")
        _quantize(ctx, float32, output, quantize_mode, *quantize_options, overwrite)


@click.command("export-torchscript")
@_common
@click.pass_context
def export_torchscript_command(ctx, checkpoint, output, overwrite, weights, atol, check) -> None:
    """Export CHECKPOINT's U-Net to TorchScript (torch.jit.load, libtorch), metadata in the extra file ddpm.json."""
    from .source import load_source
    from .torchscript_export import export_torchscript

    options = {"atol": atol, "check": check, "overwrite": overwrite}
    _finish(ctx, lambda: export_torchscript(load_source(checkpoint, weights), output, **options))


@click.command("fit-schedule")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--steps",
    default="5,8,10",
    show_default=True,
    help="Model-call counts to fit, comma-separated (each 3..T).",
)
@click.option("--sampler", default=DEFAULT_SAMPLER, show_default=True, help="The deterministic sampler to fit for.")
@click.option(
    "--images",
    type=int,
    default=DEFAULT_IMAGES,
    show_default=True,
    help="Starting noises the error is measured on (each costs the reference's and every trial's calls).",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=None, help="Write here  [default: MODEL itself]"
)
@click.option("--overwrite", is_flag=True, help="Replace an existing -o file.")
@click.option("--threads", type=int, default=None, help="ONNX Runtime threads  [default: physical cores]")
@click.option(
    "--final",
    type=click.Choice(["x0", "step"]),
    default=None,
    help="dpm-solver++ only: fit for --final step (no call at t = 0: the last call above 0, then a step "
    "onto t = 0), stored with the times, so ddpm-run samples them that way.  [default: the sampler's, x0]",
)
def fit_schedule_command(model, steps, sampler, images, output, overwrite, threads, final) -> None:
    """Fit MODEL's call times for SAMPLER at each --steps count and store them in its metadata.

    For each count, the times (first T-1, last 0) whose images come closest, in mean squared error per
    pixel, to a 100-call dpm-solver++ run from the same --images starting noises. `ddpm-run sample
    MODEL --sampler SAMPLER --steps N` then uses them (unless --spacing is given); `ddpm-run info`
    lists them. Only MODEL's metadata changes, atomically.
    """
    from .fit_schedule import fit_model_file

    try:
        counts = [int(item) for item in steps.split(",") if item.strip()]
    except ValueError:
        raise ExportError(f"--steps must be whole numbers separated by commas, got {steps!r}") from None

    def report(item) -> None:
        fit = item.entry.fit
        click.echo(
            f"{sampler} {item.steps} calls: error {fit['error']:.3e} (best fixed spacing, "
            f"{fit['start_spacing']}: {fit['start_error']:.3e}) in {item.seconds:.0f} s; t = "
            + ", ".join(f"{t:.1f}" for t in item.entry.timesteps)
        )

    options = {} if final is None else {"final": final}
    written = fit_model_file(
        model, counts, sampler, images, output, threads=threads, overwrite=overwrite, on_report=report, options=options
    )
    click.echo(f"wrote {written}")


@click.command("export-generator")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="The generator file to write (atomically)."
)
@click.option(
    "--sampler", default=None, help="A sampler of the registry.  [default: the model's own, as ddpm-run sample]"
)
@click.option(
    "--steps", type=int, default=None, help="Model calls per image.  [default: the model's own for its sampler]"
)
@click.option(
    "--spacing",
    default=None,
    help="Where the calls fall in t (as ddpm-run sample --spacing).  "
    "[default: the model's fitted times, else the sampler's]",
)
@click.option("--rho", type=float, default=None, help="Exponent of the karras spacing.")
@sampler_options
@click.option("--overwrite", is_flag=True, help="Replace an existing -o file (never MODEL).")
@click.pass_context
def export_generator_command(ctx, model, output, sampler, steps, spacing, rho, overwrite, **options) -> None:
    """Write MODEL (a file of `ddpm export-onnx`) and a sampler as one ONNX graph from noise to images.

    Inputs x_T [batch, C, H, W] (and step_noise [draws, batch, C, H, W] for samplers that add noise
    per step; y [batch] and guidance_scale [] for class-conditional models); outputs images uint8
    [batch, H, W, C] and x_0. The sampler, its times and options are the ones ddpm-run sample would
    use for MODEL unless given. Kept only if its images match ddpm-run's for the same noise (exit 1
    otherwise, nothing written).
    """
    from .generator import GeneratorMismatch, GeneratorRequest, export_generator

    given = {name: value for name, value in options.items() if value is not None}
    request = GeneratorRequest(sampler=sampler, steps=steps, options=given, spacing=spacing, rho=rho)
    try:
        result = export_generator(model, output, request, overwrite)
    except GeneratorMismatch as exc:
        click.echo(f"error: generator check failed: {exc}", err=True)
        ctx.exit(1)
    entry = result.entry
    noise = f", {entry.noise_draws} noise draws" if entry.noise_draws else ""
    click.echo(f"{entry.sampler}, {entry.steps} calls{noise}; {result.report.describe()}")
    ratio = result.size_bytes / result.model_size_bytes
    click.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {ratio:.2f}x the model file)")


@click.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The model file to write.")
@click.option(
    "--mode",
    default="int8",
    show_default=True,
    help="int8: static QDQ quantization (ONNX Runtime's CPU provider, onnxruntime-web's WebAssembly); "
    "fp16: float16 weights and activations, for GPUs and WebGPU.",
)
@_quantize_options
@click.option("--overwrite", is_flag=True, help="Replace an existing -o file (never MODEL).")
@click.pass_context
def quantize_command(
    ctx, model, output, mode, calibration_images, max_image_diff, real, max_class_change, overwrite
) -> None:
    """Write an int8 or fp16 copy of MODEL (a file of `ddpm export-onnx`); int8 is calibrated on the
    network's inputs along its default sampler's trajectories. Kept only if its images stay within
    --max-image-diff of the float32 model's, and with --real within --max-class-change (exit 1
    otherwise, nothing written). Every sampler runs on it unchanged.
    """
    _quantize(ctx, model, output, mode, calibration_images, max_image_diff, real, max_class_change, overwrite)
