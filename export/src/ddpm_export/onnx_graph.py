"""One rewrite of the exported graph for ONNX Runtime's CPU provider: GroupNormalization as LayerNormalization.

ONNX Runtime 1.32's CPU provider has no GroupNormalization kernel: it expands the op's function body
into primitives (per GroupNorm 2 ReduceMean, 2 Sub, 2 Div, a Sqrt, 5 Cast, Reshapes and Shapes), each
a pass over the activation. The same maths as three nodes it has fused kernels for:

    grouped = Reshape(x, [0, G, -1])                        # (B, G, C/G * H * W)
    normed  = LayerNormalization(grouped, ones, axis=-1)    # mean and variance over each group
    y       = Reshape(normed, [0, C, H, W]) * scale[C, 1, 1] + bias[C, 1, 1]

is faster for the `fast` preset's forward, more so at small batches (docs/benchmarks/speed.md,
"The GroupNorm rewrite"). LayerNormalization needs the group's size, so the rewrite
applies where shape inference knows C, H and W (always, for this model: only the batch is dynamic).
The exporter's parity gate checks the rewritten graph against torch like any other.
"""

from __future__ import annotations

import numpy as np

# GroupNormalization's scale and bias became per channel in opset 21; opset 18's were per group.
MIN_OPSET = 21


def group_norms_as_layer_norms(proto) -> int:
    """Rewrite every GroupNormalization node of ``proto`` in place; returns how many were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    opset = {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import}.get("ai.onnx", 0)
    if opset < MIN_OPSET:
        return 0
    shapes = _static_shapes(onnx.shape_inference.infer_shapes(proto))
    nodes, initializers, count = [], [], 0
    ones: dict[int, str] = {}  # one unit scale per group size, shared by the GroupNorms of that size
    for node in proto.graph.node:
        dims = shapes.get(node.input[0]) if node.op_type == "GroupNormalization" and not node.domain else None
        if dims is None or len(dims) < 3 or any(d is None for d in dims[1:]):
            nodes.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        groups, epsilon = attributes["num_groups"], attributes.get("epsilon", 1e-5)
        channels, spatial = dims[1], int(np.prod(dims[2:]))
        x, scale, bias = node.input
        name = f"{node.name or 'group_norm'}_as_layer_norm_{count}"
        count += 1

        def value(suffix: str, name: str = name) -> str:
            return f"{name}/{suffix}"

        initializers += [
            numpy_helper.from_array(np.array([0, groups, -1], np.int64), value("group_shape")),
            # 0 copies the batch from the input: constant shapes, so that no Shape node runs per GroupNorm
            numpy_helper.from_array(np.array([0, *dims[1:]], np.int64), value("back_shape")),
            numpy_helper.from_array(np.array([channels] + [1] * (len(dims) - 2), np.int64), value("channel_shape")),
        ]
        size = channels // groups * spatial
        if size not in ones:
            ones[size] = f"group_norm_unit_scale_{size}"
            initializers.append(numpy_helper.from_array(np.ones(size, np.float32), ones[size]))
        nodes += [
            helper.make_node("Reshape", [x, value("group_shape")], [value("grouped")]),  # (B, G, C/G*H*W)
            helper.make_node(
                "LayerNormalization", [value("grouped"), ones[size]], [value("normed")], axis=-1, epsilon=epsilon
            ),
            helper.make_node("Reshape", [value("normed"), value("back_shape")], [value("back")]),  # (B, C, H, W)
            helper.make_node("Reshape", [scale, value("channel_shape")], [value("scale")]),  # (C, 1, 1)
            helper.make_node("Reshape", [bias, value("channel_shape")], [value("bias")]),
            helper.make_node("Mul", [value("back"), value("scale")], [value("scaled")]),
            helper.make_node("Add", [value("scaled"), value("bias")], list(node.output)),
        ]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    proto.graph.initializer.extend(initializers)
    return count


def _static_shapes(proto) -> dict[str, list[int | None]]:
    graph = proto.graph
    shapes = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes
