"""Run the ``ddpm`` and ``ddpm-run`` CLIs in-process, as a user would call them, capturing exit code and output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_main(capsys, main, *args) -> Result:
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_ddpm(capsys, *args) -> Result:
    from ddpm_training.cli import main

    return run_main(capsys, main, *args)


def run_ddpm_run(capsys, *args) -> Result:
    from ddpm_runtime.cli import main

    return run_main(capsys, main, *args)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("error:")]
