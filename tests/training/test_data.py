"""Every reader takes its format, and every bad file gives a one-line error naming it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

from ddpm_runtime.images import to_model_range
from ddpm_training.data import load_images
from ddpm_training.errors import TrainingError

from data_helpers import idx_bytes


def test_idx_folder_gz_with_labels(idx_dir, images, labels):
    data = load_images(idx_dir)
    assert data.images.shape == (64, 12, 12, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], images)
    np.testing.assert_array_equal(data.labels, labels)


def test_idx_raw_file_without_labels(tmp_path, images):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    data = load_images(path)
    np.testing.assert_array_equal(data.images[..., 0], images)
    assert data.labels is None


def test_csv_with_and_without_label(tmp_path, images, labels):
    flat = images.reshape(len(images), -1)
    header = ",".join(f"pixel{i}" for i in range(flat.shape[1]))
    with_label = tmp_path / "train.csv"
    with_label.write_text(
        "label,"
        + header
        + "\n"
        + "\n".join(f"{label}," + ",".join(map(str, r)) for label, r in zip(labels, flat, strict=True))
    )
    pixels_only = tmp_path / "generated.csv"
    pixels_only.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in flat))
    a, b = load_images(with_label), load_images(pixels_only)
    np.testing.assert_array_equal(a.images[..., 0], images)
    np.testing.assert_array_equal(a.labels, labels)
    np.testing.assert_array_equal(b.images, a.images)
    assert b.labels is None and a.fingerprint == b.fingerprint


def test_npz_keras_layout_and_npy_float(tmp_path, images, labels):
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images, y_train=labels, x_test=images[:4], y_test=labels[:4])
    data = load_images(npz)
    np.testing.assert_array_equal(data.images[..., 0], images)
    np.testing.assert_array_equal(data.labels, labels)
    npy = tmp_path / "floats.npy"
    np.save(npy, images[:, None].astype(np.float32) / 255.0)  # (N, 1, H, W) in [0, 1]
    np.testing.assert_array_equal(load_images(npy).images, data.images)


def test_image_folder_with_class_subfolders_and_rgb(tmp_path, images):
    for i, image in enumerate(images[:6]):
        sub = tmp_path / "grey" / f"class{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(sub / f"{i}.png")
    data = load_images(tmp_path / "grey")
    assert data.images.shape == (6, 12, 12, 1)
    assert sorted(set(data.labels.tolist())) == [0, 1]
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(rgb / "a.png")
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(rgb / "b.png")
    data = load_images(rgb)
    assert data.images.shape == (2, 32, 32, 3) and data.labels is None
    assert (data.images[1] == 200).all()


def test_limit_and_model_range(idx_dir):
    data = load_images(idx_dir, limit=10)
    assert data.num_images == 10
    scaled = to_model_range(np.array([0, 255], dtype=np.uint8))
    np.testing.assert_allclose(scaled, [-1.0, 1.0])


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def bad_inputs(tmp_path, images):
    """(path, expected message fragment) for each kind of bad input the issue lists."""
    good_idx = idx_bytes(images)
    cases = {
        "missing": (tmp_path / "nope.csv", "no such file"),
        "magic": (_write(tmp_path, "bad-images-idx3-ubyte", b"\x12\x34" + good_idx[2:]), "wrong magic"),
        "truncated": (_write(tmp_path, "trunc-images-idx3-ubyte.gz", gzip.compress(good_idx[:-50])), "truncated"),
        "ragged": (_write(tmp_path, "ragged.csv", "pixel0,pixel1,pixel2,pixel3\n1,2,3,4\n1,2\n"), "columns"),
        "text": (_write(tmp_path, "text.csv", "pixel0,pixel1,pixel2,pixel3\n1,2,x,4\n"), "malformed CSV"),
        "range": (_write(tmp_path, "range.csv", "pixel0,pixel1,pixel2,pixel3\n1,2,300,4\n"), "0..255"),
    }
    nan = np.zeros((2, 4, 4), np.float32)
    nan[1, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases["nan"] = (tmp_path / "nan.npy", "NaN")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(mixed / "a.png")
    Image.fromarray(np.zeros((14, 14), np.uint8)).save(mixed / "b.png")
    cases["mixed"] = (mixed, "one size")
    (tmp_path / "empty").mkdir()
    cases["empty"] = (tmp_path / "empty", "no PNG or JPEG")
    _write(
        tmp_path,
        "pickle.npy",
        b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
        + b" " * 45
        + b"\n"
        + b"\x80\x04N.",
    )
    cases["pickle"] = (tmp_path / "pickle.npy", "cannot read NumPy file")
    return cases


CASES = ["missing", "magic", "truncated", "ragged", "text", "range", "nan", "mixed", "empty", "pickle"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_raises_training_error_naming_the_file(tmp_path, images, case):
    path, fragment = bad_inputs(tmp_path, images)[case]
    with pytest.raises(TrainingError) as info:
        load_images(path)
    message = str(info.value)
    assert str(path) in message or str(path.parent) in message
    assert fragment in message
    assert "\n" not in message
