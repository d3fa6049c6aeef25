"""What the `ddpm` commands that train share: stop signals, progress, the compute options, the summary."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TextIO

import click

from ddpm_runtime.devices import DEVICES

from ..train.compute import DEFAULT_LAYOUT, DEFAULT_PRECISION, LAYOUTS, PRECISIONS
from ..train.session import Callbacks, RunSummary

PLAIN_INTERVAL_S = 30.0  # without a terminal: seconds between progress lines (logs stay readable)
PROGRESS_SECONDS_ENV = "DDPM_PROGRESS_SECONDS"  # sets that interval (0: a line after every step)


def compute_options(func):
    """--device, --deterministic, --precision and --memory-format (ddpm train and ddpm distill)."""
    options = [
        click.option(
            "--device", type=click.Choice(DEVICES), default=DEVICES[0], help="auto picks CUDA when PyTorch sees a GPU."
        ),
        click.option(
            "--deterministic/--no-deterministic",
            default=True,
            help="On CUDA, kernels that give the same bits on every run, so --resume continues exactly (they "
            "cost some speed); --no-deterministic takes PyTorch's fastest. CPU kernels are deterministic either way.",
        ),
        click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            default=None,
            help="fp32, bf16 (bfloat16 autocast for the forward pass), or auto: bf16 only where a few timed steps "
            "show it faster on this machine (never on CPUs without bf16 instructions).  "
            f"[default: {DEFAULT_PRECISION}, or the resumed checkpoint's]",
        ),
        click.option(
            "--memory-format",
            type=click.Choice(LAYOUTS),
            default=None,
            help="Layout of weights and batches: contiguous (NCHW), channels_last (NHWC), or auto: the faster in "
            f"a few timed steps on this machine.  [default: {DEFAULT_LAYOUT}, or the resumed checkpoint's]",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# Signals that stop a run after its current step, with a checkpoint: Ctrl-C, and what `timeout`, docker
# stop, systemd, Kubernetes and SLURM send (SIGTERM), and a closed terminal (SIGHUP). torchrun forwards
# them to every worker; the workers stop at the step rank 0 stops at (trainer.fit broadcasts it).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals:
    """The first stop signal asks the run to stop after the current step and write its checkpoint; the
    second stops at once (KeyboardInterrupt: the last checkpoint written stays whole, files are staged).
    The command then exits with 128 + the signal's number, as a shell reports a process the signal
    stopped (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A context manager: the old handlers come back after."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            click.echo(f"\n{name} again: stopping now; the last checkpoint written is kept", err=True)
            raise KeyboardInterrupt
        self.received = signum
        click.echo(
            f"\n{name}: stopping after this step and writing a checkpoint (send it again to stop at once)", err=True
        )

    def stopping(self) -> bool:
        return self.received is not None

    @property
    def exit_code(self) -> int:
        return 0 if self.received is None else 128 + self.received


class Progress:
    """Progress over optimiser steps (main process only): a tqdm bar on a terminal; without one (CI,
    SLURM, nohup logs) one plain line every ``interval`` seconds and at each checkpoint."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = progress_interval() if interval is None else interval
        self.clock = clock
        self.bar = None
        self.plain = False
        self.deadline: float | None = None
        self.target: int | None = None
        self.step_now = 0
        self.last_line = 0.0
        self.started = 0.0
        self.first_step = 0
        self.record = None  # the latest LogRecord

    def callbacks(self, should_stop) -> Callbacks:
        return Callbacks(
            on_start=self.start,
            on_log=self.log,
            on_step=self.step,
            on_checkpoint=self.checkpoint,
            should_stop=should_stop,
        )

    def start(self, trainer) -> None:
        minutes = trainer.config.max_minutes
        self.started = self.last_line = self.clock()
        self.deadline = None if minutes is None else self.started + minutes * 60
        self.target, self.step_now = trainer.target_steps(), trainer.step
        self.first_step = trainer.step
        if not trainer.dist.is_main:
            return
        click.echo(trainer.describe(), err=True)
        kept = ", kept from the resumed checkpoint" if trainer.step else ""
        click.echo(f"compute: {trainer.compute.name}{kept} ({trainer.compute.reason})", err=True)
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.target, initial=trainer.step, unit="step", dynamic_ncols=True, file=self.stream)
        else:
            self.plain = True

    def _left(self, now: float) -> float | None:
        """Seconds to the end of the run: to --max-minutes' deadline, or at this invocation's rate to
        the step target, whichever comes first."""
        lefts = []
        if self.deadline is not None:
            lefts.append(max(self.deadline - now, 0.0))
        done = self.step_now - self.first_step
        if self.target is not None and done > 0:
            lefts.append((self.target - self.step_now) * (now - self.started) / done)
        return min(lefts) if lefts else None

    def step(self, step: int) -> None:
        self.step_now = step
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
        elif self.plain and self.clock() - self.last_line >= self.interval:
            self.line()

    def log(self, record) -> None:
        self.record = record
        if self.bar is not None:
            postfix = {"loss": f"{record.loss:.4f}", "img/s": f"{record.images_per_sec:.0f}"}
            if self.deadline is not None:  # tqdm's own ETA covers step targets; this covers --max-minutes
                postfix["left"] = _clock_text(self._left(self.clock()))
            self.bar.set_postfix(postfix, refresh=False)

    def checkpoint(self, step: int) -> None:
        if self.plain:
            self.line(" (checkpoint written)")

    def line(self, suffix: str = "") -> None:
        now = self.clock()
        self.last_line = now
        of = "" if self.target is None else f"/{self.target}"
        parts = [f"step {self.step_now}{of}"]
        if self.record is not None:
            parts += [f"loss {self.record.loss:.4f}", f"img/s {self.record.images_per_sec:.0f}"]
        parts.append(f"elapsed {_clock_text(now - self.started)}")
        left = self._left(now)
        if left is not None:
            parts.append(f"left {_clock_text(left)}")
        print("  ".join(parts) + suffix, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_interval() -> float:
    """Seconds between plain progress lines: $DDPM_PROGRESS_SECONDS, else PLAIN_INTERVAL_S."""
    value = os.environ.get(PROGRESS_SECONDS_ENV)
    if value is None:
        return PLAIN_INTERVAL_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise click.UsageError(f"${PROGRESS_SECONDS_ENV} must be a number of seconds >= 0, got {value!r}")
    return seconds


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run_with_progress(run, request) -> tuple[RunSummary, StopSignals]:
    """``run(request, callbacks)`` with stop signals handled and progress shown."""
    progress = Progress()
    with StopSignals() as signals:
        try:
            summary = run(request, progress.callbacks(signals.stopping))
        finally:
            progress.close()  # before any error line, so the bar does not print after it
    return summary, signals


def print_summary(summary: RunSummary, signals: StopSignals, checkpoint_hint: str = "") -> None:
    """The end of a run: why it stopped, where its files are."""
    if not summary.dist.is_main:
        return
    reason = summary.stop_reason
    if signals.received is not None:
        reason = f"{signal.Signals(signals.received).name}, exit code {signals.exit_code}"
    click.echo(f"stopped at step {summary.step} ({reason}); run folder: {summary.folder}")
    if summary.checkpoint is not None:
        click.echo(f"checkpoint: {summary.checkpoint}{checkpoint_hint.format(checkpoint=summary.checkpoint)}")
    if summary.last_samples:
        click.echo(f"samples: {summary.last_samples}")
