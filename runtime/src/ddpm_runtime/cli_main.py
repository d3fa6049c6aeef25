"""How every ddpm-onnx command ends: one line and exit code 2 for user errors, never a traceback."""

from __future__ import annotations

import sys

import click

from .errors import UserError


def run_cli(group: click.Group, argv: list[str] | None, prog_name: str) -> None:
    try:
        # Without standalone mode click returns the code of ctx.exit(...) instead of exiting.
        code = group.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # One line naming the problem (click's own message lists the choices); --help has the rest.
        command = exc.ctx.command_path if exc.ctx is not None else prog_name
        click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("aborted", err=True)
        sys.exit(130)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
