"""bench/quality.py, the comparison used for decisions: its verdicts and a whole run on a tiny model."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

QUALITY = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    return runpy.run_path(str(QUALITY))


def test_a_difference_is_apart_only_when_the_seed_ranges_do_not_overlap(quality):
    versus = quality["versus"]
    assert versus([6.75, 6.43, 6.39], [8.02, 8.43, 8.06], 2) == "+1.65 apart"  # the v default's case
    assert versus([7.85, 7.86, 11.11], [13.44, 10.04, 11.30], 2) == "+2.65 inside"  # the LeNet's, same samples
    assert versus([1.0, 2.0], [2.0, 3.0], 1) == "+1.0 inside"  # touching ranges overlap
    mean, sd = quality["mean_sd"]([1.0, 2.0, 3.0])
    assert mean == 2.0 and sd == pytest.approx(1.0)  # sample standard deviation (ddof 1)


def test_grids_stand_side_by_side_with_a_bar_between(quality):
    a, b = np.zeros((10, 6, 1), np.uint8), np.full((8, 4, 1), 7, np.uint8)
    joined = quality["side_by_side"]([a, b], gap=3)
    assert joined.shape == (10, 13, 1) and (joined[:, 6:9] == 255).all() and (joined[:8, 9:] == 7).all()
    assert (joined[8:, 9:] == 0).all()


@pytest.mark.slow
def test_a_comparison_of_two_rows_over_two_seeds(tmp_path, tiny_onnx, monkeypatch, capsys):
    from data_helpers import make_images

    monkeypatch.setenv("DDPM_ONNX_CACHE", str(tmp_path / "cache"))
    images = make_images(200, 12, 0)
    labels = (images.reshape(200, -1).mean(1) > np.median(images.reshape(200, -1).mean(1))).astype(np.int64)
    real = tmp_path / "real.npz"
    np.savez(real, x_train=images, y_train=labels, x_test=make_images(60, 12, 1), y_test=np.arange(60) % 2)
    argv = [str(QUALITY), str(tiny_onnx), "--real", str(real), "--out", str(tmp_path / "q"), "--label", "t"]
    argv += ["--rows", "ddim:3,dpm-solver++:3@30", "--num-images", "20", "--seeds", "0,1"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(QUALITY), run_name="__main__")
    table = (tmp_path / "q" / "table-t.md").read_text()
    assert "reference: the test split" in table and "floor at n = 20" in table and "floor at n = 30" in table
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[1:3] for line in lines] == [["ddim:3", "20"], ["dpm-solver++:3", "30"]]
    assert lines[1].count("apart") + lines[1].count("inside") == 3
    document = json.loads((tmp_path / "q" / "quality-t.json").read_text())
    first = document["rows"][0]["seeds"]
    assert [s["seed"] for s in first] == [0, 1] and first[0]["cnn"]["fid"] != first[1]["cnn"]["fid"]
    assert first[0]["lenet"]["reference_split"] == "test"
    from PIL import Image

    from ddpm_runtime.images import make_grid

    tallest = make_grid(np.zeros((30, 12, 12, 1), np.uint8), ncols=8).shape  # the 30-image row's
    for seed in (0, 1):  # the two rows' grids side by side, 8 columns each
        with Image.open(tmp_path / "q" / f"compare-t-seed{seed}.png") as grid:
            assert grid.size == (2 * tallest[1] + 8, tallest[0])
    (kept,) = (tmp_path / "q").glob("samples-t-*-ddim-3-seed1.npz")
    assert np.load(kept)["arr_0"].shape == (20, 12, 12, 1)
