"""ddpm eval ranks obvious cases correctly on real data, and refuses unlabelled real data."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from ddpm_training.data import ImageData, load_images
from ddpm_training.evaluation import evaluate, feature_classifier

from cli_helpers import error_lines, run_ddpm

FASHION = Path("/usr/share/datasets/fashion-mnist")
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "classifiers"  # reused across runs, by fingerprint


# The degradations of docs/evaluation.md's table, from the script that measured it.
blur = runpy.run_path(str(Path(__file__).resolve().parents[2] / "bench" / "eval_instrument.py"))["blur"]


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


def test_real_sets_take_the_reference_from_the_test_split_and_the_floor_from_held_out_images():
    from ddpm_training.evaluation.classifier import held_out_split
    from ddpm_training.evaluation.evaluate import real_sets

    real = ImageData(np.zeros((200, 4, 4, 1), np.uint8), np.arange(200) % 2, "real")
    test = ImageData(np.zeros((50, 4, 4, 1), np.uint8), np.arange(50) % 2, "test")
    held_out, _ = held_out_split(real.num_images, seed=3)  # 20 of 200, never trained on
    small = real_sets(15, real, test, classifier_seed=3, seed=0, num_reference=None)
    assert small.split == "test" and small.reference_data is test and len(small.reference) == 50
    assert set(small.floor) <= set(held_out) and small.floor_unseen == 15
    large = real_sets(30, real, test, classifier_seed=3, seed=0, num_reference=40)
    assert len(large.reference) == 40 and len(set(large.reference)) == 40 and large.reference.max() < 50
    assert set(held_out) <= set(large.floor) and large.floor_unseen == 20  # held-out ones first, then others
    assert len(set(large.floor)) == 30 and sorted(large.pool) == list(range(200))
    # without a test split: floor and reference are disjoint parts of the labelled data
    train = real_sets(30, real, None, classifier_seed=3, seed=0, num_reference=None)
    assert train.split == "train" and train.reference_data is real
    assert len(train.reference) == 170 and not set(train.floor) & set(train.reference)
    assert train.floor_unseen == len(set(train.floor) & set(held_out))
    assert not set(train.pool) & set(train.reference) and len(train.pool) == 30


def test_held_out_split_is_the_one_the_classifiers_trained_without():
    """The floor relies on these images being unseen: the split must be the trainer's own draw."""
    import torch

    from ddpm_training.evaluation.classifier import HELD_OUT, held_out_split

    order = torch.randperm(500, generator=torch.Generator().manual_seed(7)).numpy()
    held, trained = held_out_split(500, 7)
    assert list(held) == list(order[: int(500 * HELD_OUT)]) and list(trained) == list(order[int(500 * HELD_OUT) :])


def test_test_split_is_found_beside_idx_files_and_in_npz(tmp_path, idx_dir):
    import gzip

    from ddpm_training.data import load_test_split, test_split_path

    from data_helpers import idx_bytes, make_images

    assert test_split_path(idx_dir) is None and load_test_split(tmp_path) is None
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes((idx_dir / name).read_bytes())
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(make_images(30, 12, 5))))
    assert test_split_path(folder) is not None and load_test_split(folder) is None  # no labels: no test split
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.arange(30) % 3)))
    for path in (folder, folder / "train-images-idx3-ubyte.gz"):
        test = load_test_split(path)
        assert test.num_images == 30 and list(test.labels[:4]) == [0, 1, 2, 0], path
    archive = labelled_npz(tmp_path / "keras.npz", 40)
    assert test_split_path(archive) is None
    np.savez(archive, **dict(np.load(archive)), x_test=make_images(20, 12, 6), y_test=np.arange(20) % 2)
    test = load_test_split(archive)
    assert test.num_images == 20 and "x_test" in test.source
    assert load_images(archive).num_images == 40  # the training split is still what training reads


def test_eval_cli_measures_against_the_test_split_where_there_is_one(capsys, tmp_path, monkeypatch):
    from data_helpers import make_images

    monkeypatch.setenv("DDPM_ONNX_CACHE", str(tmp_path / "cache"))
    real = labelled_npz(tmp_path / "real.npz", 200)
    test_images = make_images(60, 12, 9)
    np.savez(real, **dict(np.load(real)), x_test=test_images, y_test=(np.arange(60) % 2).astype(np.int64))
    samples = tmp_path / "samples.npz"
    np.savez(samples, arr_0=make_images(20, 12, 11)[:, :, :, None])
    result = run_ddpm(capsys, "eval", samples, "--real", real, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (
        report["reference_split"] == "test" and report["num_reference"] == 60 and "x_test" in report["reference_source"]
    )
    assert report["floor_unseen"] == 20 and report["lenet"]["reference_split"] == "test"
    text = run_ddpm(capsys, "eval", samples, "--real", real, "--num-reference", "40")
    assert text.code == 0 and "reference:  40 test images" in text.out and "all held out" in text.out, text.out
    train = run_ddpm(capsys, "eval", samples, "--real", real, "--reference", "train", "--json")
    assert train.code == 0 and json.loads(train.out)["reference_split"] == "train"
    assert json.loads(train.out)["fid"] != report["fid"]
    for args, fragment in (
        (["--num-reference", "61"], "more than the 60 test images"),
        (["--num-reference", "1"], "--num-reference must be at least 2"),
        (["--reference", "train", "--num-reference", "190"], "too few for 20 samples and --num-reference 190"),
    ):
        refused = run_ddpm(capsys, "eval", samples, "--real", real, *args)
        assert refused.code == 2 and fragment in error_lines(refused)[0], refused.err
    plain = labelled_npz(tmp_path / "plain.npz", 200)
    refused = run_ddpm(capsys, "eval", samples, "--real", plain, "--reference", "test")
    assert refused.code == 2 and "no labelled test split" in error_lines(refused)[0]
    default = run_ddpm(capsys, "eval", samples, "--real", plain, "--json")
    assert default.code == 0 and json.loads(default.out)["reference_split"] == "train"  # said in the report
