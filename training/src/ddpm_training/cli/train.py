"""`ddpm train`: its options (one per TrainConfig field marked for the command line) and the call."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from ddpm_runtime.schedule import SCHEDULE_KINDS, ScheduleConfig

from ..data.classes import DEFAULT_LABEL_DROPOUT
from ..model.config import DEFAULT_PRESET, PRESETS
from ..train.compute import DEFAULT_LAYOUT, DEFAULT_PRECISION
from ..train.config import TrainConfig
from ..train.settings import DEFAULT_RUN_FOLDER
from .common import compute_options, print_summary, run_with_progress

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


@click.command("train")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=None,
    help='Model configuration (docs/training.md, "Presets").  '
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
@compute_options
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
@click.option("--bf16/--no-bf16", default=None, help="Spellings of --precision bf16 / --precision fp32.")
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
    from ..data.classes import parse_class_names_option
    from ..train.run import run_training
    from ..train.settings import TrainRequest

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

    request = TrainRequest(
        data=data,
        out=out,
        preset=preset,
        train_options=train_options,
        schedule_options=schedule_options,
        resume=resume,
        device=device,
        limit=limit,
        class_conditional=class_conditional,
        class_names=None if class_names is None else parse_class_names_option(class_names),
        label_dropout=label_dropout,
        precision=precision or DEFAULT_PRECISION,
        layout=memory_format or DEFAULT_LAYOUT,
        deterministic=deterministic,
    )
    summary, signals = run_with_progress(run_training, request)
    print_summary(summary, signals)
    ctx.exit(signals.exit_code)
