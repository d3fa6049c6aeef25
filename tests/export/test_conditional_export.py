"""Class-conditional export: the third input y, parity torch vs ONNX vs TorchScript with mixed labels,
the classes in the metadata, and unconditional exports exactly as they were before conditioning."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from ddpm_export.errors import ExportError
from ddpm_export.onnx_export import export_onnx, strip_source_locations, to_onnx_proto
from ddpm_export.onnx_graph import group_norms_as_layer_norms
from ddpm_export.parity import check_parity
from ddpm_export.source import load_source
from ddpm_export.torchscript_export import export_torchscript, load_torchscript
from ddpm_runtime.onnx_model import load_onnx_model
from ddpm_training.diffusion.torch_eps import numpy_eps_model
from ddpm_training.model.config import UNetConfig
from ddpm_training.model.unet import Unet
from ddpm_training.train.checkpoint import load_checkpoint, save_checkpoint

from cli_helpers import run_ddpm
from data_helpers import CLASS_NAMES, make_checkpoint

LEGACY = Path(__file__).with_name("legacy_tiny_unconditional_151d252.json")


def eager(checkpoint_path):
    ckpt = load_checkpoint(checkpoint_path)
    model = Unet(UNetConfig.from_dict(ckpt["model_config"])).eval()
    model.load_state_dict(ckpt["ema"])
    return model


def inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 12, 12)).astype(np.float32)
    t = rng.uniform(0, 999, batch).astype(np.float32)
    y = rng.integers(0, len(CLASS_NAMES) + 1, batch).astype(np.int64)  # classes and "no class" mixed
    y[0] = len(CLASS_NAMES)
    return x, t, y


def test_torch_onnx_and_torchscript_agree_with_y(tiny_conditional_trained, tiny_conditional_onnx, tmp_path):
    model = eager(tiny_conditional_trained)
    session = ort.InferenceSession(str(tiny_conditional_onnx), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()][2] == ("y", "tensor(int64)", ["batch"])
    result = export_torchscript(load_source(tiny_conditional_trained), tmp_path / "model.pt")
    scripted, document = load_torchscript(tmp_path / "model.pt")
    assert json.loads(document)["classes"]["names"] == list(CLASS_NAMES)
    assert any("y none" in row.timesteps for row in result.report.rows)
    for batch in (1, 5, 64):
        x, t, y = inputs(batch, seed=batch)
        with torch.no_grad():
            expected = model(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
            traced = scripted(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy()
        got = session.run(None, {"x": x, "t": t, "y": y})[0]
        assert np.abs(got - expected).max() <= 1e-4
        assert np.abs(traced - expected).max() <= 1e-4
        # and the label matters: the same x, t with other labels gives other outputs
        other = session.run(None, {"x": x, "t": t, "y": (y + 1) % (len(CLASS_NAMES) + 1)})[0]
        assert np.abs(other - got).max() > 1e-3


def test_the_parity_gate_covers_y(tiny_conditional_trained):
    """A candidate that ignores the labels (always "no class") must fail the gate."""
    source = load_source(tiny_conditional_trained)
    reference = numpy_eps_model(source.model)

    def ignores_y(x, t, y=None):
        return reference(x, t, np.full(x.shape[0], len(CLASS_NAMES)))

    report = check_parity(reference, ignores_y, (1, 12, 12), 1000, 1e-4, num_classes=len(CLASS_NAMES))
    assert not report.passed
    assert check_parity(reference, reference, (1, 12, 12), 1000, 1e-4, num_classes=len(CLASS_NAMES)).passed
    names = [row.timesteps for row in report.rows]
    assert "per row, y mixed" in names and "per row, y none" in names


def test_conditional_metadata_records_classes_and_label_dropout(tiny_conditional_onnx):
    meta = load_onnx_model(tiny_conditional_onnx, "cpu").metadata
    assert meta.classes.names == CLASS_NAMES and meta.classes.null_index == len(CLASS_NAMES)
    assert meta.training["label_dropout"] == 0.1
    assert meta.model_config["num_classes"] == len(CLASS_NAMES)


def test_a_checkpoint_whose_classes_do_not_fit_its_model_is_refused(capsys, tiny_conditional_trained, tmp_path):
    ckpt = load_checkpoint(tiny_conditional_trained)
    ckpt["classes"]["names"] = ["a", "b"]
    broken = tmp_path / "broken.pt"
    save_checkpoint(broken, {k: v for k, v in ckpt.items() if k not in ("format", "format_version")})
    with pytest.raises(ExportError, match="do not fit its model's 3 classes"):
        load_source(broken)
    result = run_ddpm(capsys, "export-onnx", broken, "-o", tmp_path / "m.onnx")
    assert result.code == 2 and not (tmp_path / "m.onnx").exists()


def canonical_facts(model: onnx.ModelProto) -> tuple[str, str, dict]:
    """(structure sha256, weights sha256, ddpm metadata less the checkpoint's hash and the weights'
    digest, which came later and follows from the weights) of an exported model: see
    legacy_tiny_unconditional_151d252.json for what each covers."""
    model = copy.deepcopy(model)
    strip_source_locations(model)
    model.doc_string = ""
    document = json.loads(next(p.value for p in model.metadata_props if p.key == "ddpm"))
    del document["training"]["checkpoint_sha256"]
    assert len(document["exporter"].pop("weights_sha256")) == 64
    del model.metadata_props[:]
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for initializer in model.graph.initializer:
        for data in ("raw_data", "float_data", "int64_data"):
            initializer.ClearField(data)
    weight_bytes = b"".join(np.ascontiguousarray(weights[name]).tobytes() for name in sorted(weights))
    structure = hashlib.sha256(model.SerializeToString()).hexdigest()
    return structure, hashlib.sha256(weight_bytes).hexdigest(), document


def test_unconditional_export_is_the_model_written_before_conditioning(tmp_path):
    """legacy_tiny_unconditional_151d252.json records what the code of commit 151d252, before class
    conditioning existed, exported for the tiny model at its fixed-seed initial weights: graph, weights,
    inputs and ddpm metadata. Today's training and exporter must write that very model. Recorded before
    any training step on purpose: after one, float kernels differ between CPU kinds in the last bits (and
    the exporter folds equal weights together, so even the graph follows the values). Trained models are
    checked with a tolerance against images recorded before then in tests/runtime/test_golden_samples.py."""
    record = json.loads(LEGACY.read_text())
    ckpt = tmp_path / "tiny.pt"
    make_checkpoint(ckpt, "tiny", 12, steps=0)
    out = tmp_path / "tiny.onnx"
    export_onnx(load_source(ckpt), out)
    written = onnx.load(out)
    assert not any(node.metadata_props for node in written.graph.node)
    assert b"unet.py" not in out.read_bytes()  # no source paths of the exporting machine
    assert [i.name for i in written.graph.input] == record["inputs"] == ["x", "t"]
    assert [o.name for o in written.graph.output] == record["outputs"]
    # What torch's exporter writes is the very model; the file then holds its GroupNorms in the form
    # ONNX Runtime runs faster (onnx_graph.py, tested in test_onnx_graph.py), and nothing else changed.
    raw = to_onnx_proto(load_source(ckpt), group_norm_rewrite=False)
    structure, weights, document = canonical_facts(raw)
    assert document == record["ddpm_metadata"] == canonical_facts(written)[2]
    assert "classes" not in document
    assert structure == record["structure_sha256"]
    assert weights == record["weights_sha256"]
    group_norms = sum(node.op_type == "GroupNormalization" for node in raw.graph.node)
    assert group_norms == sum(node.op_type == "LayerNormalization" for node in written.graph.node) > 0
    assert group_norms_as_layer_norms(raw) == group_norms
    assert raw.graph == written.graph
