"""`ddpm distill`: parse the options and hand them to ``distill_run.run_distill``."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from .cli import deterministic_option
from .compute import LAYOUTS, PRECISIONS
from .distill import LOSSES, ONE_CALL_TEACHER_CALLS, TARGETS, DistillConfig
from .distill_run import DEFAULT_DISTILL_FOLDER, DISTILL_DEFAULTS

_D = DistillConfig()


@click.command("distill")
@click.argument("teacher", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help=f"Run folder.  [default: {DEFAULT_DISTILL_FOLDER}]"
)
@click.option(
    "--resume", type=click.Path(path_type=Path), default=None, help="Continue the student run in this checkpoint."
)
@click.option("--calls", type=int, default=None, help=f"Model calls the student samples with.  [default: {_D.calls}]")
@click.option(
    "--teacher-calls",
    type=int,
    default=None,
    help="Teacher calls per trajectory (DPM-Solver++(2M), karras; for --target multistep the student's fitted "
    "times, each segment split evenly in lambda), a multiple of --calls.  "
    f"[default: {ONE_CALL_TEACHER_CALLS} for --calls 1, else {_D.teacher_calls}]",
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default=None,
    help="What the student learns from each of its call times: the end of the teacher's trajectory (it then "
    "samples with the consistency sampler, in any divisor of --calls), or the teacher's state at its next call "
    "time: segment (DDIM, exactly --calls calls) or multistep (DPM-Solver++(2M) landing on t = 0, at --calls "
    "times fitted on the teacher first, a minute or two).  "
    f"[default: {_D.target}]",
)
@click.option(
    "--reuse",
    type=int,
    default=None,
    help="Learn from each teacher trajectory this many times on average: every R-th step draws fresh ones "
    "into a pool of 2 R steps' worth, and every step takes its batch from the pool (about R times the "
    f"student steps for the teacher's time; the pool is kept in the checkpoint).  [default: {_D.reuse}]",
)
@click.option(
    "--loss",
    type=click.Choice(LOSSES),
    default=None,
    help="Per trajectory point, the mean square of the student's x_0 error, or pseudo-Huber of its RMS "
    f"(sqrt(e^2 + c^2) - c, c = 0.00054: about the RMS itself).  [default: {_D.loss}]",
)
@click.option(
    "--guidance-scale",
    type=float,
    default=None,
    help="Class-conditional teachers: the classifier-free guidance folded into the student (one call per step "
    "instead of two).  [default: ddpm-run's guidance scale]",
)
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps in total.")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes of this invocation.")
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help=f"Trajectory points per step.  [default: {DISTILL_DEFAULTS['batch_size']}]",
)
@click.option("--lr", type=float, default=None, help=f"Adam learning rate.  [default: {DISTILL_DEFAULTS['lr']:g}]")
@click.option(
    "--ema-decay",
    type=float,
    default=None,
    help=f"Decay of the exported EMA.  [default: {DISTILL_DEFAULTS['ema_decay']}]",
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=None,
    help=f"Steps between checkpoints and sample grids.  [default: {DISTILL_DEFAULTS['checkpoint_every']}]",
)
@click.option("--seed", type=int, default=None, help="Seed of the starting noises.  [default: 0]")
@click.option(
    "--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True, help="As for ddpm train."
)
@click.option(
    "--memory-format", type=click.Choice(LAYOUTS), default="auto", show_default=True, help="As for ddpm train."
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@deterministic_option
@click.pass_context
def distill_command(
    ctx,
    teacher,
    out,
    resume,
    calls,
    teacher_calls,
    target,
    reuse,
    loss,
    guidance_scale,
    precision,
    memory_format,
    device,
    deterministic,
    **values,
) -> None:
    """Distil TEACHER (a `ddpm train` checkpoint) into a student that samples in --calls model calls.

    The student (the same U-Net, started from the teacher's EMA weights) learns from each of its own call
    times the end of the teacher's few-call ODE trajectory (--target end: the consistency sampler) or its
    next point (--target segment: DDIM; --target multistep: DPM-Solver++(2M) at times fitted on the teacher,
    landing on t = 0); `ddpm export-onnx` writes the sampler, its options and times into its metadata,
    so `ddpm-run sample student.onnx` uses them.
    Checkpoints, resume, --max-minutes, SIGTERM and the progress bar are those of `ddpm train`.
    """
    from .cli import StopSignals, _Progress
    from .distill_run import DistillRequest, run_distill

    options = {name: value for name, value in values.items() if value is not None}
    request = DistillRequest(
        teacher,
        out,
        resume,
        calls,
        teacher_calls,
        guidance_scale,
        options,
        precision,
        memory_format,
        device,
        target=target,
        reuse=reuse,
        loss=loss,
        deterministic=deterministic,
    )
    progress = _Progress()
    with StopSignals() as signals:
        from .run import Callbacks

        callbacks = Callbacks(progress.start, progress.log, progress.step, signals.stopping)
        try:
            summary = run_distill(request, callbacks)
        finally:
            progress.close()
    reason = summary.stop_reason
    if signals.received is not None:
        reason = f"{signal.Signals(signals.received).name}, exit code {signals.exit_code}"
    click.echo(f"stopped at step {summary.step} ({reason}); run folder: {summary.folder}")
    if summary.checkpoint is not None:
        click.echo(
            f"checkpoint: {summary.checkpoint}  (export it with: ddpm export-onnx {summary.checkpoint} -o student.onnx)"
        )
    if summary.last_samples:
        click.echo(f"samples: {summary.last_samples}")
    ctx.exit(signals.exit_code)
