"""The ``ddpm`` command. It parses options, calls the library, and turns UserError into exit code 2.

Other distributions of the project add subcommands (``export-onnx`` ...) through the
``ddpm.commands`` entry-point group, so ``ddpm`` stays one command whichever parts are installed.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import fields
from importlib.metadata import entry_points
from pathlib import Path

import click
from click.core import ParameterSource

from ddpm_runtime.cli_main import run_cli
from ddpm_runtime.devices import DEVICES
from ddpm_runtime.schedule import SCHEDULE_KINDS, ScheduleConfig

from .classes import DEFAULT_LABEL_DROPOUT
from .compute import DEFAULT_LAYOUT, DEFAULT_PRECISION, LAYOUTS, PRECISIONS
from .config import DEFAULT_PRESET, PRESETS
from .evaluation import DEFAULT_K, DEFAULT_SEED
from .run_settings import DEFAULT_RUN_FOLDER
from .train_config import TrainConfig

_DEFAULTS = TrainConfig()
_SCHEDULE = ScheduleConfig()

_TYPES = {"int": int, "float": float, "str": str}


def _train_options() -> list[tuple[str, str, object, str]]:
    """(option, TrainConfig field, type, help) for every setting TrainConfig marks for the command line:
    the flag is the field's name, the help and choices are TrainConfig's, so a new setting is one field."""
    options = []
    for item in fields(TrainConfig):
        if not item.metadata.get("cli"):
            continue
        choices = item.metadata.get("choices")
        kind = click.Choice(list(choices)) if choices else _TYPES[str(item.type).split(" |")[0]]
        options.append(("--" + item.name.replace("_", "-"), item.name, kind, item.metadata["help"]))
    return options


TRAIN_OPTIONS = _train_options()
SCHEDULE_OPTIONS = [
    ("--timesteps", "num_timesteps", int, "Diffusion steps T."),
    ("--beta-start", "beta_start", float, "First beta of the linear schedule."),
    ("--beta-end", "beta_end", float, "Last beta of the linear schedule."),
]


deterministic_option = click.option(
    "--deterministic/--no-deterministic",
    default=True,
    help="On CUDA, kernels that give the same bits on every run, so --resume continues exactly (on an H200 "
    "at batch 64 they cost about 1.3x in steps per second); --no-deterministic takes PyTorch's fastest. "
    "CPU kernels are deterministic either way.",
)


def _load_plugins(group: click.Group) -> None:
    for entry in entry_points(group="ddpm.commands"):
        try:
            group.add_command(entry.load(), entry.name)
        except Exception as exc:  # a broken plugin must not take `ddpm train` down with it
            click.echo(f"warning: cannot load ddpm subcommand {entry.name!r}: {exc}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="ddpm-training")
def cli() -> None:
    """Train the seed's DDPM U-Net (and, with ddpm-export installed, export it)."""


def train_options(func):
    for flag, name, kind, text in reversed(TRAIN_OPTIONS):
        default = getattr(_DEFAULTS, name)
        suffix = f"  [default: {default}]" if default is not None else ""
        func = click.option(flag, name, type=kind, default=None, help=text + suffix, show_default=False)(func)
    for flag, name, kind, text in reversed(SCHEDULE_OPTIONS):
        func = click.option(
            flag,
            name,
            type=kind,
            default=None,
            show_default=False,
            help=f"{text}  [default: {getattr(_SCHEDULE, name)}]",
        )(func)
    return func


@cli.command("train")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=None,
    help="Model configuration (see the README's preset table).  "
    f"[default: {DEFAULT_PRESET}, or the resumed checkpoint's]",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Run folder for checkpoint, loss CSV/PNG and sample grids.  [default: {DEFAULT_RUN_FOLDER}, "
    "or the resumed checkpoint's folder]",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the run saved in this checkpoint, exactly where it stopped.",
)
@click.option(
    "--limit",
    type=int,
    default=None,
    help="Use only the first N images (the seed's num_datapoints); --resume keeps the run's.",
)
@click.option(
    "--device", type=click.Choice(DEVICES), default=DEVICES[0], help="auto picks CUDA when PyTorch sees a GPU."
)
@deterministic_option
@click.option(
    "--schedule",
    "kind",
    type=click.Choice(SCHEDULE_KINDS),
    default=None,
    help=f"Noise schedule.  [default: {_SCHEDULE.kind}]",
)
@click.option(
    "--class-conditional",
    is_flag=True,
    help="Condition on the data's class labels (classifier-free guidance; refused for data without labels).",
)
@click.option(
    "--class-names",
    default=None,
    help="With --class-conditional: names of classes 0..K-1, a comma list or a file with one per line.  "
    "[default: the image folder's subfolder names, Fashion-MNIST's names when the data path says fashion, "
    "else the numbers]",
)
@click.option(
    "--label-dropout",
    type=float,
    default=None,
    help="With --class-conditional: share of labels replaced by 'no class', training the unconditional model "
    f"that classifier-free guidance needs.  [default: {DEFAULT_LABEL_DROPOUT}]",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help="fp32, bf16 (bfloat16 autocast for the forward pass), or auto: bf16 only where a few timed steps "
    "show it faster on this machine (never on CPUs without bf16 instructions).  "
    f"[default: {DEFAULT_PRECISION}, or the resumed checkpoint's]",
)
@click.option("--bf16/--no-bf16", default=None, help="Spellings of --precision bf16 / --precision fp32.")
@click.option(
    "--memory-format",
    type=click.Choice(LAYOUTS),
    default=None,
    help="Layout of weights and batches: contiguous (NCHW), channels_last (NHWC), or auto: the faster in a few "
    f"timed steps on this machine.  [default: {DEFAULT_LAYOUT}, or the resumed checkpoint's]",
)
@train_options
@click.pass_context
def train_command(
    ctx: click.Context,
    data,
    preset,
    out,
    resume,
    limit,
    device,
    deterministic,
    kind,
    class_conditional,
    class_names,
    label_dropout,
    precision,
    bf16,
    memory_format,
    **values,
) -> None:
    """Train on DATA: an MNIST-layout folder or IDX file (raw or .gz), a Kaggle CSV, .npy/.npz, or a folder of images.

    Runs under `torchrun --nproc_per_node K` unchanged (DistributedDataParallel; gloo on CPU, nccl on CUDA).
    """
    from .classes import parse_class_names_option
    from .run import Callbacks, run_training
    from .run_settings import TrainRequest

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

    schedule_fields = {name for _, name, *_ in SCHEDULE_OPTIONS}
    train_options = {k: v for k, v in values.items() if given(k) and k not in schedule_fields}
    schedule_options = {k: v for k, v in values.items() if given(k) and k in schedule_fields}
    if kind is not None:
        schedule_options["kind"] = kind
    if bf16 is not None:
        spelled = "bf16" if bf16 else "fp32"
        if precision not in (None, spelled):
            raise click.UsageError(f"--{'' if bf16 else 'no-'}bf16 contradicts --precision {precision}")
        precision = spelled

    names = None if class_names is None else parse_class_names_option(class_names)
    request = TrainRequest(
        data,
        out,
        preset,
        train_options,
        schedule_options,
        resume,
        device,
        limit,
        class_conditional,
        names,
        label_dropout,
        precision or DEFAULT_PRECISION,
        memory_format or DEFAULT_LAYOUT,
        deterministic=deterministic,
    )
    progress = _Progress()
    with StopSignals() as signals:
        callbacks = Callbacks(progress.start, progress.log, progress.step, signals.stopping)
        try:
            summary = run_training(request, callbacks)
        finally:
            progress.close()  # before any error line, so the bar does not print after it
    if summary.dist.is_main:
        reason = summary.stop_reason
        if signals.received is not None:
            reason = f"{signal.Signals(signals.received).name}, exit code {signals.exit_code}"
        click.echo(f"stopped at step {summary.step} ({reason}); run folder: {summary.folder}")
        if summary.checkpoint is not None:
            click.echo(f"checkpoint: {summary.checkpoint}")
        if summary.last_samples:
            click.echo(f"samples: {summary.last_samples}")
    ctx.exit(signals.exit_code)


@cli.command("eval")
@click.argument("samples", type=click.Path(path_type=Path))
@click.option(
    "--real",
    "real",
    type=click.Path(path_type=Path),
    required=True,
    help="Labelled real data, in any format `ddpm train` reads (its labels train the feature classifier).",
)
@click.option(
    "--k", type=int, default=DEFAULT_K, show_default=True, help="Neighbourhood size for precision and recall."
)
@click.option(
    "--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the classifier and of the real subsets."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where trained classifiers are kept.  [default: $DDPM_ONNX_CACHE or ~/.cache/ddpm-onnx]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_command(samples, real, k, seed, cache_dir, as_json) -> None:
    """Measure SAMPLES (samples.npz, a PNG folder, or the seed's CSV) against labelled real data.

    FID in the feature space of a LeNet classifier trained on the real data (cached by the data's
    fingerprint), with the real-vs-real floor for the same number of images, precision and recall
    (Kynkäänniemi et al. 2019) and the class histogram of the samples. Samples drawn with --class
    (samples.npz holds their labels): how often the classifier agrees with the requested class, and
    FID per class against the real images of that class.
    """
    import json

    from .data import load_images
    from .evaluation import check_eval_data, check_eval_options, evaluate, feature_classifier

    cache_dir = check_eval_options(k, cache_dir)
    sample_data, real_data = load_images(samples), load_images(real)
    check_eval_data(sample_data, real_data, k)
    classifier = feature_classifier(
        real_data,
        cache_dir,
        seed,
        on_epoch=lambda e, acc: click.echo(
            f"training feature classifier: epoch {e}, held-out accuracy {acc:.1%}", err=True
        ),
    )
    report = evaluate(sample_data, real_data, classifier, seed=seed, k=k)
    if as_json:
        click.echo(
            json.dumps(
                {
                    **report.to_dict(),
                    "samples": str(samples),
                    "real": str(real),
                    "classifier_cache": str(classifier.cache_path),
                },
                indent=2,
            )
        )
        return
    origin = "cached" if classifier.from_cache else "trained now"
    click.echo(f"samples:    {report.num_samples} images from {samples}")
    click.echo(
        f"real:       {real_data.num_images} images from {real}; reference statistics from {report.num_reference}"
    )
    click.echo(
        f"features:   LeNet ({origin}: {classifier.cache_path}), held-out accuracy {report.classifier_accuracy:.1%}"
    )
    click.echo(
        f"FID:        {report.fid:.3f}   "
        f"(floor, {report.num_samples} real vs the same reference: {report.fid_floor:.3f})"
    )
    click.echo(
        f"precision:  {report.precision:.3f}   recall: {report.recall:.3f}   "
        f"(k={report.k}; real vs real: {report.floor_precision:.3f} / {report.floor_recall:.3f})"
    )
    click.echo(
        "classes:    "
        + "  ".join(f"{i}:{100 * s:.0f}%" for i, s in enumerate(report.sample_classes))
        + "   (samples; real: "
        + " ".join(f"{100 * s:.0f}" for s in report.real_classes)
        + ")"
    )
    if report.class_agreement is not None:
        click.echo(
            f"requested:  the classifier agrees with the requested class for {report.class_agreement:.1%} of the "
            f"samples (its accuracy on held-out real images: {report.classifier_accuracy:.1%})"
        )
        names = sample_data.class_names or ()
        click.echo(f"{'class':>11}  {'name':<14} {'samples':>8} {'agree':>7} {'FID':>8} {'floor':>8}")
        for row in report.per_class:
            floor = "-" if row.fid_floor is None else f"{row.fid_floor:.3f}"
            name = names[row.label] if row.label < len(names) else ""
            click.echo(
                f"{row.label:>11}  {name:<14} {row.num_samples:>8} {row.agreement:>7.1%} {row.fid:>8.3f} {floor:>8}"
            )


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


class _Progress:
    """tqdm bar over optimiser steps (main process only)."""

    def __init__(self) -> None:
        self.bar = None
        self.deadline: float | None = None

    def start(self, trainer) -> None:
        minutes = trainer.config.max_minutes
        self.deadline = None if minutes is None else time.monotonic() + minutes * 60
        if trainer.dist.is_main:
            from tqdm import tqdm

            total = trainer.target_steps()
            click.echo(trainer.describe(), err=True)
            kept = ", kept from the resumed checkpoint" if trainer.step else ""
            click.echo(f"compute: {trainer.compute.name}{kept} ({trainer.compute.reason})", err=True)
            self.bar = tqdm(
                total=total if total < 2**62 else None,
                initial=trainer.step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def step(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def log(self, record) -> None:
        if self.bar is not None:
            postfix = {"loss": f"{record.loss:.4f}", "img/s": f"{record.images_per_sec:.0f}"}
            if self.deadline is not None:  # tqdm's own ETA covers step targets; this covers --max-minutes
                left = max(self.deadline - time.monotonic(), 0.0)
                postfix["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: list[str] | None = None) -> None:
    from .distill_cli import distill_command

    cli.add_command(distill_command)
    _load_plugins(cli)
    run_cli(cli, argv, "ddpm")


if __name__ == "__main__":
    main()
