"""Every `ddpm` and `ddpm-run` command the README shows is one the tools take: the command exists,
every option it gives is one of that command's options, and every value given to a choice is a choice."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"&&|;|\bthen:", line):
                part = part.replace("[", "").replace("]", "").strip()
                if re.match(r"(ddpm|ddpm-run|torchrun .* -m ddpm_training\.cli) ", part):
                    commands.append(part)
    return commands


def groups() -> dict[str, click.Group]:
    from ddpm_runtime.cli import cli as runtime_cli
    from ddpm_training.cli import _load_plugins, cli

    _load_plugins(cli)  # export-onnx, export-torchscript, fit-schedule
    return {"ddpm": cli, "ddpm-run": runtime_cli}


def problems(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "torchrun":
        words = ["ddpm", *words[words.index("ddpm_training.cli") + 1 :]]
    group = groups()[words[0]]
    name, args = words[1], words[2:]
    if name not in group.commands:
        return [f"no command {words[0]} {name}"]
    params = {}
    for param in group.commands[name].params:
        for flag in [*param.opts, *param.secondary_opts]:
            params[flag] = param
    found = []
    for i, word in enumerate(args):
        if not word.startswith("-") or word in ("-h",):
            continue
        flag = word.split("=", 1)[0]
        if flag not in params and flag != "--help":
            found.append(f"{words[0]} {name}: no option {flag}")
            continue
        param = params.get(flag)
        if param is not None and isinstance(param.type, click.Choice) and i + 1 < len(args):
            value = args[i + 1]
            if "|" not in value and value not in param.type.choices:
                found.append(f"{words[0]} {name} {flag}: {value!r} is not one of {param.type.choices}")
    return found


def test_the_readme_shows_commands():
    names = {" ".join(shlex.split(c)[:2]) for c in readme_commands()}
    assert {"ddpm train", "ddpm export-onnx", "ddpm-run sample", "ddpm distill", "ddpm eval"} <= names


@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_is_one_the_tools_take(command):
    assert problems(command) == []


def test_the_check_finds_a_wrong_option_and_a_wrong_choice():
    assert problems("ddpm train DATA --no-such-option 3")
    assert problems("ddpm-run sample model.onnx --sampler euler-maruyama")
    assert problems("ddpm no-such-command")
