"""Progress of a training run: a bar on a terminal, plain lines in logs (CI, SLURM, nohup)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from ddpm_training.cli.common import PROGRESS_SECONDS_ENV, Progress, progress_interval
from ddpm_training.train.trainer import LogRecord

from cli_helpers import run_ddpm


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_trainer(target=100, max_minutes=None, step=0):
    return SimpleNamespace(
        config=SimpleNamespace(max_minutes=max_minutes),
        target_steps=lambda: target,
        step=step,
        dist=SimpleNamespace(is_main=True),
        describe=lambda: "training 1 parameter",
        compute=SimpleNamespace(name="fp32 contiguous", reason="as given"),
    )


def record(step: int, loss: float = 0.5) -> LogRecord:
    return LogRecord(step=step, epoch=0.0, loss=loss, lr=1e-3, images_per_sec=250.0, elapsed_s=0.0)


def test_without_a_terminal_one_plain_line_every_interval_and_at_each_checkpoint():
    stream, clock = Stream(tty=False), Clock()
    progress = Progress(stream, interval=30.0, clock=clock)
    progress.start(fake_trainer(target=100))
    for step in range(1, 11):  # 10 steps, 10 s each
        clock.now += 10.0
        if step % 2 == 0:
            progress.log(record(step, loss=1.0 / step))
        progress.step(step)
    progress.checkpoint(10)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "step 3/100  loss 0.5000  img/s 250  elapsed 0:30  left 16:10",
        "step 6/100  loss 0.1667  img/s 250  elapsed 1:00  left 15:40",
        "step 9/100  loss 0.1250  img/s 250  elapsed 1:30  left 15:10",
        "step 10/100  loss 0.1000  img/s 250  elapsed 1:40  left 15:00 (checkpoint written)",
    ]


def test_a_time_limit_counts_down_and_a_run_without_target_shows_none():
    stream, clock = Stream(tty=False), Clock()
    progress = Progress(stream, interval=0.0, clock=clock)
    progress.start(fake_trainer(target=None, max_minutes=2.0))
    clock.now += 45.0
    progress.step(1)
    assert stream.getvalue() == "step 1  elapsed 0:45  left 1:15\n"


def test_on_a_terminal_the_bar_and_no_plain_lines():
    stream, clock = Stream(tty=True), Clock()
    progress = Progress(stream, interval=0.0, clock=clock)
    progress.start(fake_trainer(target=100))
    for step in range(1, 4):
        clock.now += 40.0
        progress.log(record(step))
        progress.step(step)
    progress.checkpoint(3)
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "3/100" in text  # tqdm's bar, redrawn in place
    assert "(checkpoint written)" not in text and "elapsed" not in text


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(PROGRESS_SECONDS_ENV, raising=False)
    assert progress_interval() == 30.0
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, "5")
    assert progress_interval() == 5.0


def test_a_bad_interval_is_one_line(capsys, idx_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, "soon")
    result = run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "r", "--max-steps", "1")
    assert result.code == 2 and PROGRESS_SECONDS_ENV in result.err and "Traceback" not in result.err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_training_log_without_a_terminal_has_plain_lines(capsys, idx_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_SECONDS_ENV, "0")
    args = ["--preset", "tiny", "--batch-size", "8", "--num-preview", "2", "--preview-steps", "2"]
    result = run_ddpm(capsys, "train", idx_dir, "--out", tmp_path / "r", "--max-steps", "4", *args)
    assert result.code == 0, result.err
    assert "\r" not in result.err
    assert "step 4/4" in result.err and "(checkpoint written)" in result.err
