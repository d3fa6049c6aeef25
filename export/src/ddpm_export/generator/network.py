"""The network inside a generator: one copy of the eps-model's nodes per model call, all reading one set
of weights.

Unrolled copies, not a ``Loop`` over the calls: ONNX Runtime optimises and plans every copy like the
plain model (fusions, memory reuse), the sampler's per-step coefficients stay constants, and the
weights are stored once, so the file grows only by the copies' node lists (docs/model-format.md,
"Generator files", gives the sizes). Tensor names are shortened so those lists stay small. (The one
``Loop`` in a generator runs all the calls over a few rows at a time: row_chunks.py.)
"""

from __future__ import annotations

from ddpm_runtime import contract

from ..errors import ExportError


class NetworkCalls:
    """Adds copies of ``graph`` (the plain model's GraphProto) to a ``GraphBuilder``."""

    def __init__(self, graph, builder, source: str):
        self.builder = builder
        for node in graph.node:
            if any(attribute.g.node or attribute.graphs for attribute in node.attribute):
                raise ExportError(
                    f"{source}: the network has control flow ({node.op_type}); a generator cannot copy it"
                )
        weights = {tensor.name for tensor in graph.initializer}
        self.weights = {name: f"w{i}" for i, name in enumerate(sorted(weights))}  # shared by every copy
        self.initializers = []
        for tensor in graph.initializer:
            renamed = type(tensor)()
            renamed.CopyFrom(tensor)
            renamed.name = self.weights[tensor.name]
            self.initializers.append(renamed)
        self.inputs = [value.name for value in graph.input if value.name not in weights]
        self.output = contract.EPS.name
        self.nodes = list(graph.node)
        self.calls = 0

    def __call__(self, inputs: dict[str, str]) -> str:
        """Adds one copy whose inputs are the named tensors ``inputs`` (x, t[, y]); returns its eps."""
        from onnx import NodeProto

        if set(inputs) != set(self.inputs):
            raise ExportError(f"the network takes {self.inputs}, the generator gives {sorted(inputs)}")
        names = {**self.weights, **inputs, "": ""}
        prefix = f"n{self.calls}_"
        self.calls += 1
        serial = iter(range(1 << 30))
        for node in self.nodes:
            copy = NodeProto()
            copy.CopyFrom(node)
            copy.name = ""
            copy.doc_string = ""
            for i, name in enumerate(node.input):
                copy.input[i] = names[name]
            for i, name in enumerate(node.output):
                names[name] = "" if name == "" else f"{prefix}{next(serial)}"
                copy.output[i] = names[name]
            self.builder.nodes.append(copy)
        return names[self.output]
