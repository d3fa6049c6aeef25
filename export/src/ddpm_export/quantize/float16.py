"""A float16 copy of a model file, for GPUs and WebGPU: half the weights' bytes, the same inputs and outputs.

ONNX Runtime's float16 converter does the network; two parts of the graph stay float32 because float16
would break them rather than blur them:

- what is computed from t before the first matrix product: the schedule lookup (1 - alpha_bar near
  t = 0 is 1e-4, below float16's resolution at 1) and the sinusoid's arguments (t * frequency up to
  about 1000 rad, where float16 steps by 0.5);
- the eps wrapper after the last convolution (eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x for a
  v model): a sampler's x_0 = (x - sigma eps) / alpha divides by alpha ~ 3e-5 at t = T-1, so x rounded
  to float16 inside eps (5e-4 relative) moves x_0 by far more than a grey level.

The converter also rounds every tensor that passes between kept float32 nodes through float16 and
back; those round trips are removed, so x reaches the wrapper exactly.
"""

from __future__ import annotations

from onnx import TensorProto

from ddpm_runtime import contract

KEPT_FLOAT = ["schedule and time features", "eps from the network's output"]


def float32_nodes(proto) -> list[str]:
    """The names of the nodes kept in float32 (see the module's docstring); every node must have a name."""
    nodes = list(proto.graph.node)
    from_x = {contract.X.name}
    after_product = set()
    for node in nodes:
        if any(name in from_x for name in node.input):
            from_x.update(node.output)
        if node.op_type in ("Gemm", "MatMul") or any(name in after_product for name in node.input):
            after_product.update(node.output)
    kept = [
        node.name
        for node in nodes
        if not any(name in from_x or name in after_product for name in node.output)  # t alone, before products
    ]
    convolutions = [index for index, node in enumerate(nodes) if node.op_type == "Conv"]
    if convolutions:
        downstream = set(nodes[convolutions[-1]].output)
        for node in nodes[convolutions[-1] + 1 :]:
            if any(name in downstream for name in node.input):
                downstream.update(node.output)
                kept.append(node.name)
    return kept


def to_float16(proto):
    """``proto`` (a float32 model, changed in place and returned) with float16 weights and activations."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for index, node in enumerate(proto.graph.node):
        node.name = node.name or f"node_{index}"  # the converter blocks nodes by name
    converted = convert_float_to_float16(proto, keep_io_types=True, node_block_list=float32_nodes(proto))
    _drop_round_trips(converted)
    return converted


def _drop_round_trips(proto) -> None:
    """Cast(float32 -> float16) then Cast(-> float32): the second's readers read the original instead."""
    producer = {name: node for node in proto.graph.node for name in node.output}
    original = {}
    for node in proto.graph.node:
        if node.op_type == "Cast" and _cast_to(node) == TensorProto.FLOAT:
            source = producer.get(node.input[0])
            if source is not None and source.op_type == "Cast" and _cast_to(source) == TensorProto.FLOAT16:
                original[node.output[0]] = source.input[0]
    outputs = {output.name for output in proto.graph.output}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.output[0] in outputs and node.output[0] in original:
            node.op_type, node.input[0] = "Identity", original.pop(node.output[0])  # keeps the output's name
            del node.attribute[:]
        for index, name in enumerate(node.input):
            if name in original:
                node.input[index] = original[name]
    while True:  # drop what nothing reads any more
        read = {name for node in proto.graph.node for name in node.input} | outputs
        live = [node for node in proto.graph.node if any(name in read for name in node.output)]
        if len(live) == len(proto.graph.node):
            break
        del proto.graph.node[:]
        proto.graph.node.extend(live)
    used = {name for node in proto.graph.node for name in node.input}
    unused = [tensor for tensor in proto.graph.initializer if tensor.name not in used]
    for tensor in unused:
        proto.graph.initializer.remove(tensor)


def _cast_to(node) -> int:
    return next(attribute.i for attribute in node.attribute if attribute.name == "to")
