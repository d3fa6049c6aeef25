"""ONNX / TorchScript export: parity with PyTorch, dynamic batch, metadata, and hard failures."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ddpm_runtime.metadata import METADATA_KEY, ModelMetadata
from ddpm_runtime.schedule import ScheduleConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import load_checkpoint

from cli_helpers import error_lines, run_ddpm
from data_helpers import make_checkpoint


def eager(checkpoint_path, weights="ema"):
    ckpt = load_checkpoint(checkpoint_path)
    from ddpm_training.model.config import UNetConfig

    model = Unet(UNetConfig.from_dict(ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["ema" if weights == "ema" else "model"])
    return model


def ort_session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "name,size,steps",
    [("tiny", 12, 0), ("tiny", 12, 3), ("seed-small", 28, 0), ("seed-small", 28, 2), ("fast", 28, 2)],
)
def test_onnx_and_torchscript_exports_pass_parity(capsys, tmp_path, name, size, steps):
    ckpt = tmp_path / "ckpt.pt"
    make_checkpoint(ckpt, name, size, steps)
    for command, suffix in (("export-onnx", "onnx"), ("export-torchscript", "pt")):
        out = tmp_path / f"model.{suffix}"
        result = run_ddpm(capsys, command, ckpt, "-o", out)
        assert result.code == 0, result.err
        assert "per row" in result.out and "NO" not in result.out
        assert out.is_file()
    onnx.checker.check_model(onnx.load(tmp_path / "model.onnx"), full_check=True)


def test_one_session_runs_batch_1_3_64_with_per_row_t(tiny_onnx, tiny_trained):
    session = ort_session(tiny_onnx)
    inputs = {i.name: i for i in session.get_inputs()}
    assert inputs["x"].shape == ["batch", 1, 12, 12] and inputs["x"].type == "tensor(float)"
    assert inputs["t"].shape == ["batch"] and inputs["t"].type == "tensor(float)"
    assert [o.name for o in session.get_outputs()] == ["eps"]
    model = eager(tiny_trained)
    rng = np.random.default_rng(1)
    for batch in (1, 3, 64):
        x = rng.standard_normal((batch, 1, 12, 12)).astype(np.float32)
        t = rng.uniform(0, 999, batch).astype(np.float32)  # a different, fractional t per row
        got = session.run(None, {"x": x, "t": t})[0]
        with torch.no_grad():
            expected = model(torch.from_numpy(x), torch.from_numpy(t)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        # Per-row t really is per row: row i equals a batch-1 run at t[i].
        single = session.run(None, {"x": x[-1:], "t": t[-1:]})[0]
        np.testing.assert_allclose(got[-1:], single, atol=1e-5)


def test_metadata_round_trip(tiny_onnx, tiny_trained, tmp_path):
    import hashlib

    ckpt = load_checkpoint(tiny_trained)
    props = {p.key: p.value for p in onnx.load(tiny_onnx).metadata_props}
    meta = ModelMetadata.from_json(props[METADATA_KEY], str(tiny_onnx))
    assert meta.model_config == ckpt["model_config"]
    assert meta.schedule == ScheduleConfig.from_dict(ckpt["schedule"])
    assert (meta.image.channels, meta.image.height, meta.image.width) == (1, 12, 12)
    assert meta.image.value_range == (-1.0, 1.0) and meta.prediction_type == "epsilon"
    assert meta.training["steps"] == 3 and meta.training["ema"] is True
    assert meta.training["checkpoint_sha256"] == hashlib.sha256(tiny_trained.read_bytes()).hexdigest()
    assert meta.exporter["opset"] == 23 and meta.exporter["torch"] == str(torch.__version__)
    assert ModelMetadata.from_json(meta.to_json()) == meta

    from ddpm_export.source import load_source
    from ddpm_export.torchscript_export import export_torchscript, load_torchscript

    export_torchscript(load_source(tiny_trained), tmp_path / "m.pt")
    _, text = load_torchscript(str(tmp_path / "m.pt"))
    ts_meta = ModelMetadata.from_json(text)
    assert ts_meta.model_config == meta.model_config and ts_meta.schedule == meta.schedule
    assert ts_meta.exporter["format"] == "torchscript"


def test_onnx_reference_evaluator_agrees_with_onnxruntime(tiny_onnx):
    from onnx.reference import ReferenceEvaluator

    x = np.random.default_rng(2).standard_normal((2, 1, 12, 12)).astype(np.float32)
    t = np.array([0.0, 731.5], dtype=np.float32)
    reference = ReferenceEvaluator(str(tiny_onnx)).run(None, {"x": x, "t": t})[0]
    runtime = ort_session(tiny_onnx).run(None, {"x": x, "t": t})[0]
    np.testing.assert_allclose(runtime, reference, atol=1e-4, rtol=0)


def test_raw_weights_export(tiny_trained, tmp_path):
    from ddpm_export.onnx_export import export_onnx
    from ddpm_export.source import load_source

    export_onnx(load_source(tiny_trained, "raw"), tmp_path / "raw.onnx")
    meta = ModelMetadata.from_json({p.key: p.value for p in onnx.load(tmp_path / "raw.onnx").metadata_props}["ddpm"])
    assert meta.training["ema"] is False
    x = np.random.default_rng(4).standard_normal((2, 1, 12, 12)).astype(np.float32)
    t = np.array([5.0, 600.0], np.float32)
    got = ort_session(tmp_path / "raw.onnx").run(None, {"x": x, "t": t})[0]
    with torch.no_grad():
        raw = eager(tiny_trained, "raw")(torch.from_numpy(x), torch.from_numpy(t)).numpy()
        ema = eager(tiny_trained, "ema")(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(got, raw, atol=1e-4, rtol=0)  # the gate's tolerance
    assert np.abs(raw - ema).max() > 1e-2  # the two weight sets really differ  # the two weight sets really differ


# ---- failures: the gate is an error, not a warning, and leaves no file


def test_parity_failure_exits_1_and_writes_nothing(capsys, tiny_trained, tmp_path):
    out = tmp_path / "strict.onnx"
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", out, "--atol", "1e-12")
    assert result.code == 1
    assert "NO" in result.out and "parity check failed" in result.err
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_broken_torchscript_is_caught(capsys, tiny_trained, tmp_path, monkeypatch):
    """A saved module that computes something else must fail the gate (here: eps off by 1e-3)."""
    import ddpm_export.torchscript_export as ts

    real = ts.load_torchscript

    class Shifted(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, t):
            return self.inner(x, t) + 1e-3

    monkeypatch.setattr(ts, "load_torchscript", lambda data: (Shifted(real(data)[0]), ""))
    out = tmp_path / "broken.pt"
    result = run_ddpm(capsys, "export-torchscript", tiny_trained, "-o", out)
    assert result.code == 1 and not out.exists()


def test_bad_inputs_exit_2_without_files(capsys, tiny_trained, tmp_path):
    def expect(fragment, *args):
        result = run_ddpm(capsys, *args)
        assert result.code == 2, (result.code, result.err)
        assert "Traceback" not in result.err
        errors = error_lines(result)
        assert len(errors) == 1 and fragment in errors[0], result.err

    out = tmp_path / "m.onnx"
    expect("no such checkpoint", "export-onnx", tmp_path / "missing.pt", "-o", out)
    (tmp_path / "corrupt.pt").write_bytes(b"\x00" * 100)
    expect("not a readable checkpoint", "export-onnx", tmp_path / "corrupt.pt", "-o", out)
    ckpt = torch.load(tiny_trained, weights_only=True)
    ckpt["format_version"] = 7
    torch.save(ckpt, tmp_path / "future.pt")
    expect("format version 7", "export-torchscript", tmp_path / "future.pt", "-o", tmp_path / "m.pt")
    (tmp_path / "file").write_text("x")
    expect("cannot be written", "export-onnx", tiny_trained, "-o", tmp_path / "file" / "m.onnx")
    assert not out.exists() and not (tmp_path / "m.pt").exists()


def test_opset_18_for_older_runtimes_and_no_check(capsys, tiny_trained, tmp_path):
    out = tmp_path / "m18.onnx"
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", out, "--opset", "18")
    assert result.code == 0, result.err
    model = onnx.load(out)
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 18
    assert "Attention" not in {n.op_type for n in model.graph.node}  # decomposed at opset 18
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", tmp_path / "unchecked.onnx", "--no-check")
    assert result.code == 0 and "parity check skipped" in result.out
    assert (tmp_path / "unchecked.onnx").is_file()


# ---- never lose a user's file


def test_output_never_replaces_the_checkpoint_and_existing_files_need_overwrite(capsys, tiny_trained, tmp_path):
    import os

    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(tiny_trained.read_bytes())
    before = checkpoint.read_bytes()
    os.link(checkpoint, tmp_path / "hardlink.pt")
    (tmp_path / "symlink.pt").symlink_to(checkpoint)
    for command in ("export-onnx", "export-torchscript"):
        for target in (checkpoint, tmp_path / "hardlink.pt", tmp_path / "symlink.pt"):
            result = run_ddpm(capsys, command, checkpoint, "-o", target, "--overwrite")
            assert result.code == 2 and "is the checkpoint being exported" in result.err, result.err
    assert checkpoint.read_bytes() == before

    existing = tmp_path / "existing.txt"
    existing.write_text("precious")
    result = run_ddpm(capsys, "export-onnx", checkpoint, "-o", existing)
    assert result.code == 2 and "exists (pass --overwrite" in result.err
    assert existing.read_text() == "precious"
    assert run_ddpm(capsys, "export-onnx", checkpoint, "-o", existing, "--overwrite").code == 0
    assert onnx.load(existing).graph.input[0].name == "x"
    assert not list(tmp_path.glob(".*.tmp"))


def test_opsets_the_exporter_cannot_write_are_refused_and_the_written_one_recorded(capsys, tiny_trained, tmp_path):
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", tmp_path / "m5.onnx", "--opset", "5")
    assert result.code == 2 and "cannot write opset 5 (it wrote 18)" in result.err, result.err
    assert not (tmp_path / "m5.onnx").exists()
    assert run_ddpm(capsys, "export-onnx", tiny_trained, "-o", tmp_path / "m21.onnx", "--opset", "21").code == 0
    model = onnx.load(tmp_path / "m21.onnx")
    meta = ModelMetadata.from_json({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    written = {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"]
    assert meta.exporter["opset"] == written == 21


def test_web_target_writes_opset_21_and_says_so(capsys, tiny_trained, tmp_path):
    out = tmp_path / "web.onnx"
    result = run_ddpm(capsys, "export-onnx", tiny_trained, "-o", out, "--target", "web")
    assert result.code == 0, result.err
    model = onnx.load(out)
    meta = ModelMetadata.from_json({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 21
    assert meta.exporter["target"] == "web" and meta.exporter["opset"] == 21
    assert "Attention" not in {n.op_type for n in model.graph.node}  # opset 23's op; WebGPU has no kernel
    result = run_ddpm(
        capsys, "export-onnx", tiny_trained, "-o", tmp_path / "m.onnx", "--target", "web", "--opset", "23"
    )
    assert result.code == 2 and error_lines(result) == [
        "error: --target web needs opset 21 or lower (its WebGPU backend has no kernels for newer ops), got --opset 23"
    ], result.err
    assert not (tmp_path / "m.onnx").exists()
    default = tmp_path / "default.onnx"  # the default export's metadata has no target: older readers know no target
    assert run_ddpm(capsys, "export-onnx", tiny_trained, "-o", default).code == 0
    meta = ModelMetadata.from_json({p.key: p.value for p in onnx.load(default).metadata_props}[METADATA_KEY])
    assert "target" not in meta.exporter and meta.exporter["opset"] == 23
