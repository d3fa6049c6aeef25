"""The ``ddpm`` command. Each command parses its options, calls the library, and the shared entry turns
UserError into one line and exit code 2 (``ddpm_runtime.cli_main``).

Other distributions of the project add subcommands (``export-onnx`` ...) through the
``ddpm.commands`` entry-point group, so ``ddpm`` stays one command whichever parts are installed.
"""

from __future__ import annotations

import traceback
from importlib.metadata import entry_points

import click

from ddpm_runtime.cli_main import run_cli

from ..train import process_exit
from .distill import distill_command
from .eval import eval_command
from .train import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="ddpm-training")
def cli() -> None:
    """Train the seed's DDPM U-Net (and, with ddpm-export installed, export it)."""


cli.add_command(train_command)
cli.add_command(distill_command)
cli.add_command(eval_command)


def _load_plugins(group: click.Group) -> None:
    for entry in entry_points(group="ddpm.commands"):
        if entry.name in group.commands:
            continue
        try:
            group.add_command(entry.load(), entry.name)
        except Exception as exc:  # a broken plugin must not take `ddpm train` down with it
            click.echo(f"warning: cannot load ddpm subcommand {entry.name!r}: {exc}", err=True)


def main(argv: list[str] | None = None) -> None:
    _load_plugins(cli)
    try:
        run_cli(cli, argv, "ddpm")
    except SystemExit as exc:
        if process_exit.joined():  # a torchrun worker: see process_exit.py
            process_exit.hard_exit(process_exit.exit_code(exc))
        raise
    except BaseException:  # a bug: its traceback, and exit code 1 as Python would give
        if process_exit.joined():
            traceback.print_exc()
            process_exit.hard_exit(1)
        raise
    if process_exit.joined():
        process_exit.hard_exit(0)
