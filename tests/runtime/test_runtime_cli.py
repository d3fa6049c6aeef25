"""ddpm-run: the files it writes, and its refusals. Runs without torch (see tests/conftest.py)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from cli_helpers import error_lines, run_ddpm_run

run = run_ddpm_run


def test_sample_writes_images_npz_csv(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    result = run(
        capsys,
        "sample",
        tiny_onnx,
        "-n",
        "5",
        "--batch-size",
        "2",
        "--sampler",
        "ddim",
        "--steps",
        "4",
        "--seed",
        "3",
        "--out",
        out,
        "--csv",
    )
    assert result.code == 0, result.err
    assert "CPUExecutionProvider" in result.err and str(out / "grid.png") in result.out
    images = np.load(out / "samples.npz")["arr_0"]
    assert images.shape == (5, 12, 12, 1) and images.dtype == np.uint8
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(out / "images" / "000003.png")), images[3, :, :, 0])
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 + 2 * 14, 2 + 3 * 14)  # 3 columns x 2 rows of 12px images, 2px padding
    # The seed's CSV format: a pixel0..pixel143 header, then one row of HWC pixels per image.
    lines = (out / "samples.csv").read_text().splitlines()
    assert lines[0] == ",".join(f"pixel{i}" for i in range(144))
    np.testing.assert_array_equal(np.loadtxt(lines[1:], delimiter=",", dtype=np.uint8), images.reshape(5, -1))
    assert images.std() > 0  # not a constant image


def test_same_seed_same_images_whatever_the_batch_size(capsys, tiny_onnx, tmp_path):
    common = ["-n", "4", "--sampler", "ddpm", "--steps", "5", "--seed", "9"]
    assert run(capsys, "sample", tiny_onnx, *common, "--batch-size", "4", "--out", tmp_path / "a").code == 0
    assert run(capsys, "sample", tiny_onnx, *common, "--batch-size", "3", "--out", tmp_path / "b").code == 0
    assert (
        run(capsys, "sample", tiny_onnx, *common, "--batch-size", "4", "--seed", "10", "--out", tmp_path / "c").code
        == 0
    )
    a, b, c = (np.load(tmp_path / d / "samples.npz")["arr_0"] for d in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "sampler,extra",
    [
        ("dpm-solver++", ["--x0", "dynamic", "--spacing", "logsnr"]),
        ("dpm-solver++-sde", ["--spacing", "karras", "--rho", "5"]),
        ("ddim", ["--eta", "1", "--x0", "clip"]),
        ("ddpm", ["--x0", "clip"]),
    ],
)
def test_every_sampler_runs(capsys, tiny_onnx, tmp_path, sampler, extra):
    result = run(
        capsys, "sample", tiny_onnx, "-n", "2", "--steps", "3", "--sampler", sampler, *extra, "--out", tmp_path / "o"
    )
    assert result.code == 0, result.err


def test_info(capsys, tiny_onnx):
    result = run(capsys, "info", tiny_onnx)
    assert result.code == 0 and "1x12x12" in result.out and "T=1000" in result.out and "EMA" in result.out
    data = json.loads(run(capsys, "info", tiny_onnx, "--json").out)
    assert data["format_version"] == 1 and data["schedule"]["num_timesteps"] == 1000


# ---- refusals: one line, exit 2, no output folder


def expect_error(capsys, fragment, *args, out=None):
    result = run(capsys, *args)
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err
    errors = error_lines(result)
    assert len(errors) == 1 and fragment in errors[0], result.err
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def rewrite(source, target, edit):
    model = onnx.load(source)
    edit(model)
    onnx.save(model, target)
    return target


def set_meta(model, change):
    props = {p.key: p.value for p in model.metadata_props}
    data = json.loads(props["ddpm"])
    change(data)
    del model.metadata_props[:]
    model.metadata_props.add(key="ddpm", value=json.dumps(data))


def test_bad_models(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "text.onnx").write_text("this is not a model")
    expect_error(capsys, "not", "sample", tmp_path / "text.onnx", "--out", out, out=out)
    expect_error(capsys, "no such model file", "sample", tmp_path / "missing.onnx", "--out", out, out=out)
    no_meta = rewrite(tiny_onnx, tmp_path / "nometa.onnx", lambda m: m.metadata_props.__delitem__(slice(None)))
    expect_error(capsys, "no 'ddpm' metadata", "sample", no_meta, "--out", out, out=out)
    future = rewrite(tiny_onnx, tmp_path / "future.onnx", lambda m: set_meta(m, lambda d: d.update(format_version=2)))
    expect_error(capsys, "format version 2", "info", future)
    rgb = rewrite(tiny_onnx, tmp_path / "rgb.onnx", lambda m: set_meta(m, lambda d: d["image"].update(channels=3)))
    expect_error(capsys, "does not match its metadata", "sample", rgb, "--out", out, out=out)


def test_external_data_outside_the_model_folder_is_refused(capsys, tiny_onnx, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    folder = tmp_path / "models"
    folder.mkdir()

    def point_outside(model):
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="../secret.bin")

    evil = rewrite(tiny_onnx, folder / "evil.onnx", point_outside)
    expect_error(capsys, "leaves the model's folder", "info", evil)


def test_bad_options(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    expect_error(capsys, "between 1 and T=1000", "sample", tiny_onnx, "--steps", "1001", "--out", out, out=out)
    expect_error(capsys, "between 1 and T=1000", "sample", tiny_onnx, "--steps", "0", "--out", out, out=out)
    expect_error(capsys, "at least 1", "sample", tiny_onnx, "-n", "0", "--out", out, out=out)
    expect_error(
        capsys, "ddim sampler only", "sample", tiny_onnx, "--sampler", "ddpm", "--eta", "0.5", "--out", out, out=out
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    expect_error(capsys, "cannot be written", "sample", tiny_onnx, "--out", blocker / "out")
    expect_error(capsys, "--seed must be 0 or more", "sample", tiny_onnx, "--seed", "-1", "--out", out, out=out)


def test_cuda_without_a_cuda_provider_is_an_error_not_a_fallback(capsys, tiny_onnx, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA; the refusal cannot be shown here")
    expect_error(
        capsys,
        "no CUDAExecutionProvider",
        "sample",
        tiny_onnx,
        "--device",
        "cuda",
        "--out",
        tmp_path / "o",
        out=tmp_path / "o",
    )


def test_overwrite_replaces_a_previous_run(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, "sample", tiny_onnx, "-n", "1", "--steps", "2", "--out", out, "--csv").code == 0
    assert run(capsys, "sample", tiny_onnx, "-n", "2", "--steps", "2", "--out", out, "--overwrite").code == 0
    assert np.load(out / "samples.npz")["arr_0"].shape[0] == 2
    assert not (out / "samples.csv").exists()  # nothing left over from the previous run
