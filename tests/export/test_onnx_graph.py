"""GroupNormalization rewritten as LayerNormalization (onnx_graph.py): the same function, checked
against torch's GroupNorm and against the unrewritten graph in ONNX Runtime and onnx.reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ddpm_export.onnx_export import to_onnx_proto
from ddpm_export.onnx_graph import group_norms_as_layer_norms
from ddpm_export.source import load_source


def group_norm_graph(shape, groups, opset=23, epsilon=1e-5, seed=0):
    """x (dynamic batch, then ``shape``) -> GroupNormalization with random per-channel scale and bias."""
    rng = np.random.default_rng(seed)
    channels = shape[0]
    scale = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    bias = rng.normal(0, 1, channels).astype(np.float32)
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=groups, epsilon=epsilon)
    graph = helper.make_graph(
        [node],
        "group_norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", *shape])],
        [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(bias, "bias")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), scale, bias


def run_ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("shape", "groups"),
    [((8, 6, 6), 4), ((16, 5, 7), 8), ((8, 49), 2)],  # (C, H, W) and the attention blocks' (C, L)
    ids=["4d", "4d-uneven", "3d"],
)
@pytest.mark.parametrize("batch", [1, 5])
def test_the_rewrite_equals_torchs_group_norm(shape, groups, batch):
    model, scale, bias = group_norm_graph(shape, groups)
    rewritten = onnx.ModelProto.FromString(model.SerializeToString())
    assert group_norms_as_layer_norms(rewritten) == 1
    onnx.checker.check_model(rewritten, full_check=True)
    assert [n.op_type for n in rewritten.graph.node].count("LayerNormalization") == 1
    assert "GroupNormalization" not in [n.op_type for n in rewritten.graph.node]
    assert "Shape" not in [n.op_type for n in rewritten.graph.node]  # constant shapes, the batch copied by 0

    x = np.random.default_rng(batch).normal(3.0, 2.0, (batch, *shape)).astype(np.float32)  # mean far from 0
    norm = torch.nn.GroupNorm(groups, shape[0])
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(scale))
        norm.bias.copy_(torch.from_numpy(bias))
        expected = norm(torch.from_numpy(x)).numpy()
    for got in (run_ort(rewritten, x), ReferenceEvaluator(rewritten).run(None, {"x": x})[0]):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(run_ort(rewritten, x), run_ort(model, x), rtol=0, atol=1e-5)


def test_opset_18_and_unknown_shapes_are_left_alone():
    old, _, _ = group_norm_graph((8, 4, 4), 4, opset=18)  # opset 18's scale and bias were per group
    assert group_norms_as_layer_norms(old) == 0
    unknown, _, _ = group_norm_graph((8, 4, 4), 4)
    unknown.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"  # H no longer static
    assert group_norms_as_layer_norms(unknown) == 0
    assert [n.op_type for n in unknown.graph.node] == ["GroupNormalization"]


def test_every_group_norm_of_an_exported_model_is_rewritten_and_the_outputs_agree(tiny_trained):
    source = load_source(tiny_trained)
    raw = to_onnx_proto(source, group_norm_rewrite=False)
    rewritten = to_onnx_proto(source)
    count = sum(n.op_type == "GroupNormalization" for n in raw.graph.node)  # the tiny U-Net has 12
    assert count == 12 and not any(n.op_type == "GroupNormalization" for n in rewritten.graph.node)
    # the unit scales: one per group size, shared by the GroupNorms of that size
    norms = [n for n in rewritten.graph.node if n.op_type == "LayerNormalization"]
    scales = {
        t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer if t.name in {n.input[1] for n in norms}
    }
    assert len(norms) == 12 and len({len(a) for a in scales.values()}) == len(scales) < 12
    assert all(np.all(a == 1) for a in scales.values())
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 1, 12, 12)).astype(np.float32), "t": np.array([0.0, 400.5, 999.0], "f")}
    outputs = []
    for model in (raw, rewritten):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, feeds)[0])
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-5)
