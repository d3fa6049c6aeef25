"""ddpm eval ranks obvious cases correctly on real data, and refuses unlabelled real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ddpm_training.data import ImageData, load_images
from ddpm_training.evaluation import evaluate, feature_classifier

from cli_helpers import error_lines, run_ddpm

FASHION = Path("/usr/share/datasets/fashion-mnist")
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "classifiers"  # reused across runs, by fingerprint


def blur(images: np.ndarray) -> np.ndarray:
    kernel = np.array([1, 4, 6, 4, 1.0]) / 16
    out = images.astype(np.float64)
    for axis in (1, 2):
        out = sum(w * np.roll(out, shift, axis=axis) for w, shift in zip(kernel, range(-2, 3), strict=True))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="needs Debian's dataset-fashion-mnist (make test installs it)")
def test_fid_ranks_real_noisy_blurred_uniform_on_fashion_mnist():
    real = load_images(FASHION)
    classifier = feature_classifier(real, CACHE)
    assert classifier.accuracy > 0.8  # LeNet on Fashion-MNIST after 3 epochs: about 0.85
    test = load_images(FASHION / "t10k-images-idx3-ubyte.gz").images[:1000].astype(np.float64)
    rng = np.random.default_rng(0)
    cases = {
        "real test images": test,
        "real + small noise": test + rng.normal(0, 8, test.shape),
        "blurred": blur(test),
        "uniform noise": rng.uniform(0, 255, test.shape),
    }
    reports = {
        name: evaluate(ImageData(np.rint(np.clip(a, 0, 255)).astype(np.uint8), None, name), real, classifier)
        for name, a in cases.items()
    }
    fids = [reports[name].fid for name in cases]
    assert fids == sorted(fids), fids  # measured: 2.2 < 3.2 < 77.6 < 672.6, floor 1.5
    assert reports["real test images"].fid < 2 * reports["real test images"].fid_floor + 1
    kids = [reports[name].kid for name in cases]
    assert kids == sorted(kids), kids  # KID ranks them as FID does
    floor = reports["real test images"]
    assert abs(floor.kid_floor) <= 3 * floor.kid_floor_std  # real against real: zero within its spread
    assert reports["uniform noise"].recall == 0.0 and reports["real test images"].recall > 0.8
    hist = reports["real test images"].sample_classes
    assert len(hist) == 10 and max(hist) < 0.2  # balanced classes in, balanced histogram out


def labelled_npz(path: Path, n: int, seed: int = 0) -> Path:
    from data_helpers import make_images

    images = make_images(n, 12, seed)
    labels = (images.reshape(n, -1).mean(1) > np.median(images.reshape(n, -1).mean(1))).astype(np.int64)
    np.savez(path, x_train=images, y_train=labels)
    return path


def test_eval_cli_on_small_files(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_ONNX_CACHE", str(tmp_path / "cache"))
    real = labelled_npz(tmp_path / "real.npz", 200)
    samples = tmp_path / "samples.npz"
    np.savez(samples, arr_0=np.load(real)["x_train"][:40, :, :, None])  # what ddpm-run writes
    result = run_ddpm(capsys, "eval", samples, "--real", real, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["num_samples"] == 40 and report["fid"] >= 0 and 0 <= report["precision"] <= 1
    assert len(report["sample_classes"]) == 2
    assert report["feature_network"] == "cnn" and report["kid_std"] >= 0
    lenet = report["lenet"]  # the space of earlier tables, second
    assert lenet["num_samples"] == 40 and lenet["fid"] >= 0 and lenet["fid"] != report["fid"]
    assert "(cnn): epoch 10" in result.err and "(lenet): epoch 3" in result.err  # trained now, then cached
    again = run_ddpm(capsys, "eval", samples, "--real", real)
    assert again.code == 0 and "features:   CNN (cached" in again.out and "floor" in again.out
    assert "LeNet:      FID" in again.out and "KID x1e3" in again.out
    # a flipped byte in the cached classifier's weights: its digest fails, so it is trained again
    (cached,) = (tmp_path / "cache").rglob("cnn-*.pt")
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0x01
    cached.write_bytes(bytes(data))
    third = run_ddpm(capsys, "eval", samples, "--real", real, "--json")
    assert third.code == 0 and "(cnn): epoch" in third.err and "(lenet)" not in third.err, third.err
    assert json.loads(third.out)["fid"] == report["fid"]  # the same seed trains the same classifier


def test_eval_refuses_unlabelled_real_data_and_mismatched_shapes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_ONNX_CACHE", str(tmp_path / "cache"))
    unlabelled = tmp_path / "real.npy"
    np.save(unlabelled, np.zeros((100, 12, 12), np.uint8))
    samples = tmp_path / "s.npz"
    np.savez(samples, arr_0=np.zeros((10, 12, 12, 1), np.uint8))
    result = run_ddpm(capsys, "eval", samples, "--real", unlabelled)
    assert result.code == 2 and "has no labels" in error_lines(result)[0]
    real = labelled_npz(tmp_path / "real.npz", 100)
    np.savez(tmp_path / "big.npz", arr_0=np.zeros((10, 16, 16, 1), np.uint8))
    result = run_ddpm(capsys, "eval", tmp_path / "big.npz", "--real", real)
    assert result.code == 2 and "samples are" in error_lines(result)[0]


def test_bad_k_and_an_unusable_cache_are_refused_before_any_work(capsys, tmp_path, idx_dir):
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    for args, fragment in (
        (["--k", "0"], "--k must be at least 1"),
        (["--k", "-2"], "--k must be at least 1"),
        (["--cache-dir", precious], "cannot be written"),
    ):
        result = run_ddpm(capsys, "eval", idx_dir, "--real", idx_dir, "--cache-dir", tmp_path / "cache", *args)
        assert result.code == 2 and fragment in "".join(error_lines(result)), result.err
        assert "training feature classifier" not in result.err  # refused before the classifier trains
    assert precious.read_text() == "mine"
