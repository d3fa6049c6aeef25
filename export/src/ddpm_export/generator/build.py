"""Build a generator: a plain model file's network and a registry sampler in one ONNX graph.

The sampler is not rewritten for the graph: the runtime's own function runs once on ``GraphArray``
stand-ins (graph_array.py) and every operation it performs becomes a node, with the schedule's
coefficients computed in float64 by the same NumPy lines and stored as constants. Each model call
adds a copy of the network's nodes (network.py); the whole graph then runs a few rows at a time as
the body of a Loop (row_chunks.py). The sampler's state is float64 in the graph as in ddpm-run; the
network sees float32 as it does there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ddpm_runtime import contract
from ddpm_runtime.external_data import weights_sha256
from ddpm_runtime.generate import SamplingSettings, model_defaults, model_timesteps, run_options
from ddpm_runtime.guidance import default_guidance_scale, guided_eps
from ddpm_runtime.images import to_uint8_nhwc
from ddpm_runtime.metadata import GeneratorEntry, ModelMetadata
from ddpm_runtime.samplers import all_options, get_sampler
from ddpm_runtime.schedule import NoiseSchedule

from ..errors import ExportError
from .graph_array import GraphArray, GraphBuilder
from .network import NetworkCalls
from .row_chunks import in_row_chunks


@dataclass(frozen=True, kw_only=True)
class GeneratorRequest:
    """What to bake in; None: what ``ddpm-run sample MODEL`` uses by default for this model."""

    sampler: str | None = None
    steps: int | None = None
    options: dict | None = None  # sampler options by name (x0, eta, final, ...)
    spacing: str | None = None
    rho: float | None = None


def read_model(path: Path):
    """(ModelProto with its weights inside, ModelMetadata) of a plain model file; one-line errors."""
    import onnx

    if path.is_dir() or not path.is_file():
        raise ExportError(f"{path}: no such model file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, OSError for missing external data
        raise ExportError(f"{path}: not an ONNX model ({' '.join(str(exc).split())[:160]})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if contract.METADATA_KEY not in props:
        raise ExportError(f"{path}: has no '{contract.METADATA_KEY}' metadata (export it with `ddpm export-onnx`)")
    metadata = ModelMetadata.from_json(props[contract.METADATA_KEY], str(path))
    if metadata.generator is not None:
        raise ExportError(f"{path}: is already a generator file; give the model file it was made from")
    if metadata.quantized is not None:
        # Built from a quantized file, the network's copies inside one graph do not compute what the
        # plain file computes (int8: the gate fails by far; fp16: the build cannot follow the
        # converter's casts), so generators come from the float32 model file only.
        raise ExportError(
            f"{path}: is a {metadata.quantized['mode']} model (ddpm quantize); build the generator from "
            "the float32 model file"
        )
    return proto, metadata


def resolve(
    metadata: ModelMetadata, request: GeneratorRequest, source: str
) -> tuple[SamplingSettings, np.ndarray, dict]:
    """(settings, call times, the options the sampler runs with) as ``ddpm-run sample`` resolves them."""
    sampler, steps, own = model_defaults(metadata, request.sampler, request.steps, source)
    if steps is not None and steps < 1:
        raise ExportError(f"--steps must be at least 1, got {steps}")
    given = dict(request.options or {})
    spec = get_sampler(sampler)
    declared = {option.name for option in spec.options}
    for name in given:
        if name not in declared:
            flags = ", ".join(option.flag for option in spec.options) or "none"
            flag = all_options()[name].flag if name in all_options() else name
            raise ExportError(f"{flag} does not apply to the {sampler} sampler (its options: {flags})")
    settings_kw = {"rho": request.rho} if request.rho is not None else {}
    settings = SamplingSettings(
        sampler=sampler, steps=steps, options={**own, **given}, spacing=request.spacing, **settings_kw
    )
    schedule = NoiseSchedule.from_config(metadata.schedule)
    settings.validate(schedule.num_timesteps)
    return settings, model_timesteps(settings, metadata, schedule), run_options(settings, metadata, schedule)


class _TracedNoise:
    """The samplers' ``rng``: each ``standard_normal`` call is the next slice of the step_noise input."""

    def __init__(self, builder: GraphBuilder, dims: tuple):
        self.builder, self.dims, self.draws = builder, dims, 0

    def standard_normal(self, shape) -> GraphArray:
        index = self.builder.constant(self.draws, np.int64)
        self.draws += 1
        name = self.builder.op("Gather", [contract.STEP_NOISE.name, index], axis=0)[0]
        return GraphArray(self.builder, name, np.float32, self.dims)


def build_generator(path: str | os.PathLike, request: GeneratorRequest | None = None):
    """(ModelProto, GeneratorEntry) for the model file at ``path``."""
    from onnx import TensorProto, helper

    path = Path(path)
    proto, metadata = read_model(path)
    settings, timesteps, options = resolve(metadata, request or GeneratorRequest(), str(path))
    schedule = NoiseSchedule.from_config(metadata.schedule)
    image = metadata.image
    dims = (None, image.channels, image.height, image.width)

    builder = GraphBuilder()
    network = NetworkCalls(proto.graph, builder, str(path))
    x_T = GraphArray(builder, contract.X_T.name, np.float32, dims)
    batch = builder.op("Shape", [x_T.name], start=0, end=1)[0]  # (1,): the batch size

    def per_row(value: str) -> str:
        return builder.op("Expand", [value, batch])[0]

    def network_eps(x: GraphArray, t: np.ndarray) -> GraphArray:
        # call_model hands a per-row time array; every row has the same time, which becomes a constant of
        # one row that the network broadcasts: ONNX Runtime then folds each call's time path (the time
        # features, the time MLP, every block's projection of it) into constants when it loads the file
        times = builder.constant([np.float32(t[0])], np.float32)
        if metadata.classes is None:
            return GraphArray(builder, network({"x": x.name, "t": times}), np.float32, dims)
        # guidance.py's one call on twice the rows: the requested classes, then "no class"
        null = per_row(builder.constant([metadata.classes.null_index], np.int64))
        both = network(
            {
                "x": builder.op("Concat", [x.name, x.name], axis=0)[0],
                "t": times,
                "y": builder.op("Concat", [contract.Y.name, null], axis=0)[0],
            }
        )
        conditional, plain = (
            GraphArray(builder, name, np.float32, dims)
            for name in builder.op("Split", [both], 2, axis=0, num_outputs=2)
        )
        scale = GraphArray(builder, contract.GUIDANCE_SCALE.name, np.float32, ()).as_float64()
        return guided_eps(conditional.as_float64(), plain.as_float64(), scale)

    rng = _TracedNoise(builder, dims)
    x_0 = get_sampler(settings.sampler).sample(network_eps, x_T, schedule, timesteps, rng=rng, **options)
    images = to_uint8_nhwc(x_0)
    x_0_out = x_0.astype(np.float32)
    builder.nodes += [
        helper.make_node("Identity", [images.name], [contract.IMAGES.name]),
        helper.make_node("Identity", [x_0_out.name], [contract.X_0.name]),
    ]

    guidance = default_guidance_scale(metadata.default_sampling) if metadata.conditional else None
    entry = GeneratorEntry(
        sampler=settings.sampler,
        steps=len(timesteps),
        timesteps=tuple(float(t) for t in timesteps),
        options=dict(options),
        noise_draws=rng.draws,
        guidance_scale=guidance,
    )
    onnx_types = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64, "uint8": TensorProto.UINT8}

    def value_info(spec: contract.TensorSpec):
        return helper.make_tensor_value_info(spec.name, onnx_types[spec.dtype], spec.shape(image, rng.draws))

    defaults = []  # optional inputs' values when left out
    if guidance is not None:
        defaults.append(helper.make_tensor(contract.GUIDANCE_SCALE.name, TensorProto.FLOAT, [], [guidance]))
    graph = helper.make_graph(
        builder.nodes,
        "ddpm_generator",
        [value_info(spec) for spec in contract.generator_input_specs(metadata.conditional, rng.draws)],
        [value_info(spec) for spec in contract.GENERATOR_OUTPUTS],
        initializer=network.initializers + builder.initializers,
    )
    graph = in_row_chunks(graph, defaults)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(o.domain, o.version) for o in proto.opset_import],
        ir_version=proto.ir_version,
    )
    model.producer_name = "ddpm-export generator"
    default = {"sampler": entry.sampler, "steps": entry.steps, "options": dict(entry.options)}
    if guidance is not None:
        default["guidance_scale"] = guidance
    exporter = {**metadata.exporter, contract.WEIGHTS_DIGEST_KEY: weights_sha256(model.SerializeToString())}
    generator_metadata = replace(metadata, fitted=(), default_sampling=default, generator=entry, exporter=exporter)
    helper.set_model_props(model, {contract.METADATA_KEY: generator_metadata.to_json()})
    return model, entry
