"""Open an exported model in ONNX Runtime, check it against its ``ddpm`` metadata, and call it.

``OnnxEpsModel(x, t)`` has the eps-model calling convention of the samplers; a class-conditional
model also takes ``y`` (``OnnxEpsModel(x, t, y)``), and without it every row is "no class".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .devices import DEVICES
from .errors import UserError
from .external_data import WireError, external_data_locations, weights_sha256
from .metadata import ModelMetadata
from .row_split import physical_cores, run_split

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass
class OnnxEpsModel:
    path: Path
    metadata: ModelMetadata
    provider: str  # the execution provider ONNX Runtime actually uses
    session: object
    # CPU: single-threaded sessions that each take a share of a call's rows, all at once (row_split.py);
    # empty: ``session`` runs every call with its own thread pool.
    row_sessions: tuple = ()

    def __call__(self, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        classes = self.metadata.classes
        if classes is None:
            if y is not None:
                raise UserError(f"{self.path}: is an unconditional model; it takes no class labels")
        elif y is None:
            y = np.full((x.shape[0],), classes.null_index, dtype=np.int64)
        if len(self.row_sessions) > 1 and x.shape[0] > 1:
            return run_split(self.row_sessions[: x.shape[0]], x, t, y)  # at least one row per session
        return run_session(self.session, x, t, y)


def run_session(session, x: np.ndarray, t: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    return session.run(list(contract.OUTPUT_NAMES), contract.feeds(x, t, y))[0]


def read_model_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the model file (for example {path / 'model.onnx'})")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


def is_ort_format(model_bytes: bytes) -> bool:
    """ONNX Runtime's own format (``convert_onnx_models_to_ort``, for ONNX Runtime Mobile): a flatbuffer
    with the file identifier ORTM."""
    return model_bytes[4:8] == b"ORTM"


def check_weights(path: Path, model_bytes: bytes, metadata) -> None:
    """The weights are the ones the exporter wrote (their sha256 in the metadata), where it recorded one."""
    recorded = metadata.exporter.get(contract.WEIGHTS_DIGEST_KEY)
    if recorded is not None and weights_sha256(model_bytes) != recorded:
        raise UserError(f"{path}: its weights do not match the digest in its metadata: damaged; export it again")


def check_external_data(path: Path, model_bytes: bytes) -> None:
    try:
        locations = external_data_locations(model_bytes)
    except WireError as exc:
        raise UserError(f"{path}: not an ONNX model (cannot parse: {exc})") from None
    folder = path.resolve().parent
    for location in locations:
        target = (folder / location).resolve()
        if os.path.isabs(location) or (target != folder and folder not in target.parents):
            raise UserError(f"{path}: external data path {location!r} leaves the model's folder; refusing to load")


def choose_providers(device: str, available: list[str]) -> list[str]:
    if device not in DEVICES:
        raise UserError(f"unknown --device {device!r} (choose {', '.join(DEVICES)})")
    if device == "cuda":
        if CUDA not in available:
            raise UserError(
                "--device cuda: this ONNX Runtime has no CUDAExecutionProvider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu instead of onnxruntime"
            )
        return [CUDA, CPU]
    if device == "auto" and CUDA in available:
        return [CUDA, CPU]
    return [CPU]


def load_onnx_model(path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> OnnxEpsModel:
    """Open, validate and return the model; every problem with the file is a one-line UserError.

    On the CPU without ``threads``, each call's rows are split over one single-threaded session per
    physical core (row_split.py: faster than one session with that many threads, same outputs); with
    ``threads``, one session runs every call with that many intra-op threads."""
    return eps_model_from(open_session(path, device, threads))


def eps_model_from(opened: OpenedSession) -> OnnxEpsModel:
    if opened.metadata.generator is not None:
        raise UserError(f"{opened.path}: is a generator file (noise to images), not a noise-prediction model")
    check_signature(opened.path, opened.session, opened.metadata)
    return OnnxEpsModel(opened.path, opened.metadata, opened.provider, opened.session, opened.row_sessions())


@dataclass
class OpenedSession:
    """A model file opened in ONNX Runtime, its metadata read and its weights checked."""

    path: Path
    metadata: ModelMetadata
    provider: str
    session: object
    threads: int | None
    make_session: object  # options -> another session of the same file

    def row_sessions(self) -> tuple:
        """One single-threaded session per physical core, on the CPU where no thread count was given."""
        if self.provider != CPU or self.threads is not None or physical_cores() <= 1:
            return ()
        return tuple(self.make_session(1) for _ in range(physical_cores()))


def open_session(path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> OpenedSession:
    """The file in an ONNX Runtime session, with its metadata and weights digest checked (not its
    signature: that depends on the kind of file)."""
    import onnxruntime as ort

    path = Path(path)
    model_bytes = read_model_bytes(path)
    ort_format = is_ort_format(model_bytes)
    if not ort_format:  # an .ort file (flatbuffers) has no external data
        check_external_data(path, model_bytes)
    providers = choose_providers(device, ort.get_available_providers())
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")

    def make_session(intra_op_threads: int | None):
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        # From the path, so ONNX Runtime resolves (already checked) external data next to the model.
        return ort.InferenceSession(str(path), options, providers=providers)

    try:
        session = make_session(threads)
    except Exception as exc:  # ORT raises several pybind types (InvalidProtobuf, Fail, ...)
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"{path}: not a loadable ONNX model ({reason})") from None
    if device == "cuda" and session.get_providers()[0] != CUDA:
        # ORT falls back to CPU when the CUDA libraries are missing; with --device cuda that is an error.
        raise UserError(
            f"--device cuda: ONNX Runtime could not start the CUDA provider for {path} "
            "(check the CUDA and cuDNN libraries onnxruntime-gpu needs)"
        )
    metadata = read_metadata(path, session)
    if not ort_format:  # the digest is over the ONNX file's initializers, which an .ort file stores otherwise
        check_weights(path, model_bytes, metadata)
    return OpenedSession(path, metadata, session.get_providers()[0], session, threads, make_session)


def read_metadata(path: Path, session) -> ModelMetadata:
    props = session.get_modelmeta().custom_metadata_map
    if contract.METADATA_KEY not in props:
        raise UserError(
            f"{path}: ONNX model has no '{contract.METADATA_KEY}' metadata (export it with `ddpm export-onnx`)"
        )
    return ModelMetadata.from_json(props[contract.METADATA_KEY], str(path))


def check_signature(path: Path, session, metadata: ModelMetadata) -> None:
    """The session's inputs and outputs against ``contract``, with C, H, W from the metadata."""
    inputs = {i.name: (i.type, list(i.shape)) for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    problems = contract.signature_problems(inputs, outputs, metadata.image, metadata.conditional)
    if problems:
        raise UserError(f"{path}: model does not match its metadata: {'; '.join(problems)}")
