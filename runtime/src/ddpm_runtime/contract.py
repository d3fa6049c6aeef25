"""What an exported model file promises: its inputs, outputs and metadata key, written once.

The exporter (ddpm-export) builds its graph from these declarations and the loader
(``onnx_model.load_onnx_model``) checks every model against them, so a new input is one edit here
plus the exporter's graph (the idea of optimum's ``OnnxConfig``).

    x    float32 [batch, C, H, W]   the noisy image x_t, C, H, W from the metadata's image spec
    t    float32 [batch]            the timestep of each row (fractional values allowed)
    y    int64   [batch]            class-conditional models only (metadata "classes"): the class of
                                    each row, or the metadata's null_index for "no class"
    eps  float32 [batch, C, H, W]   the predicted noise

A generator file (``ddpm export-generator``) holds a sampler around the network and maps noise to images:

    x_T             float32 [batch, C, H, W]          the starting noise
    step_noise      float32 [draws, batch, C, H, W]   stochastic samplers only: the fresh noise of each
                                                      step, in the order the sampler draws it (draws:
                                                      the metadata's generator.noise_draws)
    y               int64   [batch]                   class-conditional models only, as above
    guidance_scale  float32 []                        class-conditional models only; the initializer
                                                      holds the default, so it may be left out
    images          uint8   [batch, H, W, C]          what ddpm-run writes
    x_0             float32 [batch, C, H, W]          the sampler's end state, before the uint8 rounding

The ``ddpm`` metadata document (``metadata.ModelMetadata``) travels in the ONNX ``metadata_props``
under ``METADATA_KEY`` and in a TorchScript archive as the extra file ``METADATA_FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METADATA_KEY = "ddpm"  # ONNX metadata_props key of the JSON document
METADATA_FILE = "ddpm.json"  # the same document inside a TorchScript archive (_extra_files)
METADATA_FORMAT_VERSION = 1  # bump when a reader of the previous version would misread a new file
# the "exporter" entry's sha256 of the graph's initializers (external_data.weights_sha256); files
# exported before it have none and are read without the check
WEIGHTS_DIGEST_KEY = "weights_sha256"
BATCH_AXIS = "batch"  # the name of the dynamic first axis of every input and output

IMAGE_DIMS = ("channels", "height", "width")  # filled from the metadata's image spec


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # NumPy dtype name
    dims: tuple[str, ...]  # BATCH_AXIS first, then names from IMAGE_DIMS

    @property
    def onnx_type(self) -> str:
        """How ONNX Runtime spells the element type: ``tensor(float)``."""
        return {"float32": "tensor(float)", "int64": "tensor(int64)", "uint8": "tensor(uint8)"}[self.dtype]

    def shape(self, image, draws: int | None = None) -> list:
        """The expected shape, with the batch axis symbolic, the image axes from ``image`` (an ImageSpec)
        and a generator's number of noise draws."""
        return [BATCH_AXIS if d == BATCH_AXIS else draws if d == DRAWS_AXIS else getattr(image, d) for d in self.dims]


X = TensorSpec("x", "float32", (BATCH_AXIS, *IMAGE_DIMS))
T = TensorSpec("t", "float32", (BATCH_AXIS,))
Y = TensorSpec("y", "int64", (BATCH_AXIS,))
EPS = TensorSpec("eps", "float32", (BATCH_AXIS, *IMAGE_DIMS))

DRAWS_AXIS = "draws"  # a generator's step_noise: one slice per noise draw of its sampler
X_T = TensorSpec("x_T", "float32", (BATCH_AXIS, *IMAGE_DIMS))
STEP_NOISE = TensorSpec("step_noise", "float32", (DRAWS_AXIS, BATCH_AXIS, *IMAGE_DIMS))
GUIDANCE_SCALE = TensorSpec("guidance_scale", "float32", ())
IMAGES = TensorSpec("images", "uint8", (BATCH_AXIS, "height", "width", "channels"))
X_0 = TensorSpec("x_0", "float32", (BATCH_AXIS, *IMAGE_DIMS))
GENERATOR_OUTPUTS: tuple[TensorSpec, ...] = (IMAGES, X_0)

INPUTS: tuple[TensorSpec, ...] = (X, T)  # an unconditional model
CONDITIONAL_INPUTS: tuple[TensorSpec, ...] = (X, T, Y)  # a class-conditional model
OUTPUTS: tuple[TensorSpec, ...] = (EPS,)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)


def input_specs(conditional: bool) -> tuple[TensorSpec, ...]:
    return CONDITIONAL_INPUTS if conditional else INPUTS


def input_names(conditional: bool) -> tuple[str, ...]:
    return tuple(spec.name for spec in input_specs(conditional))


def generator_input_specs(conditional: bool, noise_draws: int) -> tuple[TensorSpec, ...]:
    """A generator's inputs: x_T, then step_noise where its sampler draws noise, then y and guidance_scale
    for a class-conditional model."""
    specs = (X_T,) + ((STEP_NOISE,) if noise_draws else ())
    return specs + ((Y, GUIDANCE_SCALE) if conditional else ())


def feeds(x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The inputs of one model call, by name, in the declared dtypes and C order (y: conditional models)."""
    named = {X.name: np.ascontiguousarray(x, X.dtype), T.name: np.ascontiguousarray(t, T.dtype)}
    if y is not None:
        named[Y.name] = np.ascontiguousarray(y, Y.dtype)
    return named


def signature_problems(
    inputs: dict[str, tuple[str, list]], outputs: list[str], image, conditional: bool = False
) -> list[str]:
    """Differences between a model's signature and the contract, as sentences (none: it conforms).

    ``inputs`` maps each input name to (ONNX Runtime type string, shape); ``image`` is the metadata's
    ImageSpec; ``conditional``: the metadata declares classes, so the model must take y. The batch
    axis may have any symbolic name or size; the image axes must match exactly.
    """
    return _problems(inputs, outputs, image, input_specs(conditional), OUTPUTS)


def generator_signature_problems(
    inputs: dict[str, tuple[str, list]],
    outputs: dict[str, tuple[str, list]],
    image,
    conditional: bool,
    noise_draws: int,
) -> list[str]:
    """``signature_problems`` for a generator file: its inputs and outputs (name -> (type, shape)) against
    ``generator_input_specs`` and ``GENERATOR_OUTPUTS``, the draws axis against the metadata's count."""
    specs = generator_input_specs(conditional, noise_draws)
    problems = _problems(inputs, list(outputs), image, specs, GENERATOR_OUTPUTS, noise_draws)
    for spec in GENERATOR_OUTPUTS:
        if spec.name in outputs and outputs[spec.name][0] != spec.onnx_type:
            problems.append(f"output {spec.name} has type {outputs[spec.name][0]}, expected {spec.onnx_type}")
    return problems


def _problems(inputs, outputs, image, specs, output_specs, draws: int | None = None) -> list[str]:
    problems = []
    names = tuple(spec.name for spec in specs)
    if set(inputs) != set(names):
        problems.append(f"inputs are {sorted(inputs)}, expected {sorted(names)}")
    else:
        for spec in specs:
            kind, shape = inputs[spec.name]
            if kind != spec.onnx_type:
                problems.append(f"input {spec.name} has type {kind}, expected {spec.onnx_type}")
            expected = spec.shape(image, draws)
            fixed = [i for i, d in enumerate(spec.dims) if d != BATCH_AXIS]
            if len(shape) != len(expected) or any(shape[i] != expected[i] for i in fixed):
                problems.append(f"input {spec.name} has shape {list(shape)}, metadata says {expected}")
    expected_outputs = [spec.name for spec in output_specs]
    if list(outputs) != expected_outputs:
        problems.append(f"outputs are {list(outputs)}, expected {expected_outputs}")
    return problems
