"""The generator's rows in chunks: the whole sampler graph is the body of a ``Loop`` over the batch.

Each iteration slices ``CHUNK_ROWS`` rows of every batched input, runs all the calls on them and
appends their images to the outputs, so a caller who hands one session many rows gets what ddpm-run's
row split gets by itself: each call's activations stay in the core's cache instead of streaming
through memory. Rows do not interact, so the images are those of the unchunked graph.

The weights and constants are the body's own initializers, stored once. A body that read them from
the outer scope would hold the same bytes, but ONNX Runtime then leaves the convolutions out of its
blocked (NCHWc) layout, and they run slower (docs/benchmarks/speed.md,
"Generator files").

The chunks' shapes are left to shape inference, which cannot see through a Slice with computed
bounds. Declared (value_info), they let ONNX Runtime fuse each residual addition into the convolution
before it, and the body ran slower that way (the same page).
"""

from __future__ import annotations

import numpy as np

from ddpm_runtime import contract

# chosen by measurement against 4 and 16 (docs/benchmarks/speed.md, "Generator files"); ddpm-run's own
# calls (at most row_split.CALL_ROWS rows) run the body once
CHUNK_ROWS = 8

# the batch axis of each batched input; guidance_scale is read from the outer graph as it is
BATCH_AXES = {contract.X_T.name: 0, contract.STEP_NOISE.name: 1, contract.Y.name: 0}


def in_row_chunks(graph, outer_initializers: list, chunk_rows: int = CHUNK_ROWS):
    """A GraphProto with ``graph``'s inputs and outputs whose only work is a Loop over ``chunk_rows``-row
    chunks running ``graph``'s nodes; ``outer_initializers`` (the defaults of optional inputs) stay outside."""
    from onnx import NodeProto, TensorProto, helper, numpy_helper

    outer_names = {tensor.name for tensor in outer_initializers}
    inputs = [value.name for value in graph.input]
    chunked = {name: f"chunk_{name}" for name in inputs if name in BATCH_AXES}
    image_dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][1:]  # x_T: C, H, W
    channels, height, width = image_dims

    def constant(name: str, value, dtype):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    body_constants = [constant("chunk_rows", [chunk_rows], np.int64), constant("chunk_axis0", [0], np.int64)]
    body_nodes = [
        helper.make_node("Unsqueeze", ["chunk_iteration", "chunk_axis0"], ["chunk_index"]),
        helper.make_node("Mul", ["chunk_index", "chunk_rows"], ["chunk_start"]),
        helper.make_node("Add", ["chunk_start", "chunk_rows"], ["chunk_end"]),  # Slice stops at the batch's end
    ]
    for name, sliced in chunked.items():
        axis = f"chunk_axis_{name}"
        body_constants.append(constant(axis, [BATCH_AXES[name]], np.int64))
        body_nodes.append(helper.make_node("Slice", [name, "chunk_start", "chunk_end", axis], [sliced]))
    for node in graph.node:
        copy = NodeProto()
        copy.CopyFrom(node)
        for i, name in enumerate(copy.input):
            copy.input[i] = chunked.get(name, name)
        body_nodes.append(copy)
    outputs = [value.name for value in graph.output]
    body_nodes.append(helper.make_node("Identity", ["chunk_go_on"], ["chunk_go_on_next"]))
    for name in outputs:
        body_nodes.append(helper.make_node("Concat", [f"done_{name}", name], [f"next_{name}"], axis=0))
    types = {value.name: value.type.tensor_type.elem_type for value in graph.output}
    body = helper.make_graph(
        body_nodes,
        "row_chunk",
        [
            helper.make_tensor_value_info("chunk_iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("chunk_go_on", TensorProto.BOOL, []),
            *(helper.make_tensor_value_info(f"done_{name}", types[name], None) for name in outputs),
        ],
        [
            helper.make_tensor_value_info("chunk_go_on_next", TensorProto.BOOL, []),
            *(helper.make_tensor_value_info(f"next_{name}", types[name], None) for name in outputs),
        ],
        initializer=[t for t in graph.initializer if t.name not in outer_names] + body_constants,
    )
    # no rows yet: the outputs' empty starting values, in each output's layout
    empty = {
        contract.IMAGES.name: np.zeros((0, height, width, channels), np.uint8),
        contract.X_0.name: np.zeros((0, channels, height, width), np.float32),
    }
    outer = [
        *outer_initializers,
        constant("chunk_rows_less_one", chunk_rows - 1, np.int64),
        constant("chunk_rows_scalar", chunk_rows, np.int64),
        constant("chunk_always", True, np.bool_),
        *(numpy_helper.from_array(empty[name], f"empty_{name}") for name in outputs),
    ]
    nodes = [
        helper.make_node("Shape", [contract.X_T.name], ["chunk_batch1"], start=0, end=1),
        helper.make_node("Squeeze", ["chunk_batch1"], ["chunk_batch"]),
        helper.make_node("Add", ["chunk_batch", "chunk_rows_less_one"], ["chunk_batch_up"]),
        helper.make_node("Div", ["chunk_batch_up", "chunk_rows_scalar"], ["chunk_trips"]),  # ceil(batch / rows)
        helper.make_node(
            "Loop", ["chunk_trips", "chunk_always", *(f"empty_{name}" for name in outputs)], outputs, body=body
        ),
    ]
    return helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), initializer=outer)
