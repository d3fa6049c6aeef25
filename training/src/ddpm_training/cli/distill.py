"""`ddpm distill`: parse the options and hand them to ``distill.run.run_distill``."""

from __future__ import annotations

from pathlib import Path

import click

from ..distill.config import LOSSES, ONE_CALL_TEACHER_CALLS, TARGETS, DistillConfig
from ..distill.run import DEFAULT_DISTILL_FOLDER, DISTILL_DEFAULTS
from ..distill.targets import PSEUDO_HUBER_C
from ..train.compute import DEFAULT_LAYOUT, DEFAULT_PRECISION
from ..train.config import TrainConfig
from .common import compute_options, print_summary, run_with_progress

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
    f"(sqrt(e^2 + c^2) - c, c = {PSEUDO_HUBER_C}: about the RMS itself).  [default: {_D.loss}]",
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
    "--keep-last",
    type=int,
    default=None,
    help=f"As for ddpm train.  [default: {TrainConfig.keep_last}]",
)
@compute_options
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
    from ..distill.run import DistillRequest, run_distill

    given = {
        "calls": calls,
        "teacher_calls": teacher_calls,
        "guidance_scale": guidance_scale,
        "target": target,
        "reuse": reuse,
        "loss": loss,
    }
    request = DistillRequest(
        teacher=teacher,
        out=out,
        resume=resume,
        distill_options={name: value for name, value in given.items() if value is not None},
        train_options={name: value for name, value in values.items() if value is not None},
        precision=precision or DEFAULT_PRECISION,
        layout=memory_format or DEFAULT_LAYOUT,
        device=device,
        deterministic=deterministic,
    )
    summary, signals = run_with_progress(run_distill, request)
    print_summary(summary, signals, "  (export it with: ddpm export-onnx {checkpoint} -o student.onnx)")
    ctx.exit(signals.exit_code)
