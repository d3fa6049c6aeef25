"""Find the external-data paths an ONNX file refers to, without the ``onnx`` package.

A model may keep tensors in side files (``TensorProto.external_data`` entry ``location``). A path that
leaves the model's folder (``../../etc/passwd``, ``/abs/path``) would make ONNX Runtime read any file
on the machine, so the runtime refuses such models before opening them. This walks the protobuf wire
format along the fields that can hold tensors (onnx.proto3 field numbers):

    ModelProto.graph = 7 -> GraphProto.node = 1, .initializer = 5, .sparse_initializer = 15
    NodeProto.attribute = 5 -> AttributeProto.t = 5, .g = 6, .tensors = 10, .graphs = 11,
                               .sparse_tensor = 22, .sparse_tensors = 23
    SparseTensorProto.values = 1, .indices = 2; TensorProto.external_data = 13 -> key = 1, value = 2
"""

from __future__ import annotations

from collections.abc import Iterator


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, payload) for every field; payload only for length-delimited fields."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == 0:
            _, pos = _varint(data, pos)
            yield number, None
        elif wire_type == 1:
            pos += 8
            yield number, None
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise WireError("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire_type == 5:
            pos += 4
            yield number, None
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if pos != len(data):
        raise WireError("truncated message")


def _tensor_locations(tensor: memoryview) -> Iterator[str]:
    for number, payload in _fields(tensor):
        if number == 13 and payload is not None:  # external_data: StringStringEntryProto
            entry = {n: bytes(p).decode("utf-8", "replace") for n, p in _fields(payload) if p is not None}
            if entry.get(1) == "location":
                yield entry.get(2, "")


def _sparse_locations(sparse: memoryview) -> Iterator[str]:
    for number, payload in _fields(sparse):
        if number in (1, 2) and payload is not None:
            yield from _tensor_locations(payload)


def _graph_locations(graph: memoryview) -> Iterator[str]:
    for number, payload in _fields(graph):
        if payload is None:
            continue
        if number == 5:
            yield from _tensor_locations(payload)
        elif number == 15:
            yield from _sparse_locations(payload)
        elif number == 1:
            for node_field, attribute in _fields(payload):
                if node_field == 5 and attribute is not None:
                    yield from _attribute_locations(attribute)


def _attribute_locations(attribute: memoryview) -> Iterator[str]:
    for number, payload in _fields(attribute):
        if payload is None:
            continue
        if number in (5, 10):
            yield from _tensor_locations(payload)
        elif number in (6, 11):
            yield from _graph_locations(payload)
        elif number in (22, 23):
            yield from _sparse_locations(payload)


def external_data_locations(model_bytes: bytes) -> list[str]:
    """Every ``location`` of external data in an ONNX ModelProto. Raises WireError for non-protobuf bytes."""
    locations: list[str] = []
    for number, payload in _fields(memoryview(model_bytes)):
        if number == 7 and payload is not None:
            locations.extend(_graph_locations(payload))
    return locations


def weights_sha256(model: bytes | memoryview) -> str:
    """sha256 over the serialized initializers of the model's main graph (GraphProto.initializer = 5,
    .sparse_initializer = 15) and of the graphs its nodes hold (a generator's Loop body keeps the
    weights), in file order: what ``ddpm export-onnx`` writes into the metadata and ``ddpm-run`` checks
    when it opens a file. Independent of the metadata, which lives outside the graph."""
    import hashlib

    digest = hashlib.sha256()

    def add_graph(graph: memoryview) -> None:
        for field, payload in _fields(graph):
            if payload is None:
                continue
            if field in (5, 15):
                digest.update(b"%d:%d:" % (field, len(payload)))
                digest.update(payload)
            elif field == 1:  # a node: the graphs among its attributes
                for number, attribute in _fields(payload):
                    if number == 5 and attribute is not None:
                        for kind, inner in _fields(attribute):
                            if kind in (6, 11) and inner is not None:
                                add_graph(inner)

    for number, graph in _fields(memoryview(model)):
        if number == 7 and graph is not None:
            add_graph(graph)
    return digest.hexdigest()
