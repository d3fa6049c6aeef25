"""ddpm-run's CPU calls split over single-threaded sessions (row_split.py): the same eps, bit for bit, as one
session running the whole batch, for even and uneven shares, a batch smaller than the sessions, and class
labels. Runs without torch."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_runtime import contract, onnx_model, row_split
from ddpm_runtime.generate import SamplingSettings, generate
from ddpm_runtime.onnx_model import load_onnx_model


@pytest.fixture
def three_cores(monkeypatch):
    monkeypatch.setattr(onnx_model, "physical_cores", lambda: 3)


def inputs(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 1, 12, 12)).astype(np.float32)
    return x, np.linspace(0, 999, rows).astype(np.float32)


def test_split_calls_equal_one_session_bit_for_bit(tiny_onnx, three_cores):
    split = load_onnx_model(tiny_onnx, "cpu")
    single = load_onnx_model(tiny_onnx, "cpu", threads=1)
    assert len(split.row_sessions) == 3 and single.row_sessions == ()
    for rows in (16, 7, 3, 2, 1):  # even and uneven shares; 2 rows: 2 of the 3 sessions; 1 row: `session`
        x, t = inputs(rows, rows)
        assert np.array_equal(split(x, t), single(x, t)), rows


def test_split_calls_pass_each_share_its_labels(tiny_conditional_onnx, three_cores):
    split = load_onnx_model(tiny_conditional_onnx, "cpu")
    single = load_onnx_model(tiny_conditional_onnx, "cpu", threads=1)
    x, t = inputs(8)
    y = np.array([0, 1, 2, 3, 3, 2, 1, 0], np.int64)
    assert np.array_equal(split(x, t, y), single(x, t, y))
    assert np.array_equal(split(x, t), single(x, t))  # no labels: every row "no class"


def test_images_do_not_depend_on_the_split(tiny_onnx, three_cores):
    split = load_onnx_model(tiny_onnx, "cpu")
    two_threads = load_onnx_model(tiny_onnx, "cpu", threads=2)
    settings = SamplingSettings(num_images=20, batch_size=16, sampler="dpm-solver++-sde", steps=8, seed=4)
    assert np.array_equal(generate(split, split.metadata, settings), generate(two_threads, split.metadata, settings))


def test_threads_given_means_one_session(tiny_onnx, three_cores):
    assert load_onnx_model(tiny_onnx, "cpu", threads=2).row_sessions == ()


class Recording:
    """A session that notes how many rows each call gets."""

    def __init__(self, session, calls: list[int]):
        self.session, self.calls = session, calls

    def run(self, names, feeds):
        self.calls.append(len(feeds[contract.X.name]))
        return self.session.run(names, feeds)


def test_each_session_runs_its_share_a_few_rows_per_call(tiny_onnx, three_cores):
    split = load_onnx_model(tiny_onnx, "cpu")
    single = load_onnx_model(tiny_onnx, "cpu", threads=1)
    calls: list[int] = []
    split.row_sessions = tuple(Recording(session, calls) for session in split.row_sessions)
    x, t = inputs(29)  # shares of 10, 10 and 9 rows
    assert np.array_equal(split(x, t), single(x, t))
    assert row_split.CALL_ROWS == 4 and sorted(calls) == sorted([4, 4, 2, 4, 4, 2, 4, 4, 1])
