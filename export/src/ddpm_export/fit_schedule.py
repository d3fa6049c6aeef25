"""`ddpm fit-schedule`: fit model-call times to an exported ONNX model and store them in its metadata.

The search itself is ``ddpm_runtime.schedule_fit`` (pure NumPy over the model's own ONNX Runtime
session, the calls users make); here: reading the file, the noise, and writing the file back with
only its ``ddpm`` metadata changed, atomically. ``ddpm-run sample`` then uses the fitted times for
that sampler and step count unless ``--spacing`` says otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ddpm_runtime import contract
from ddpm_runtime.files import check_free_space, write_atomic
from ddpm_runtime.metadata import FittedTimesteps, ModelMetadata
from ddpm_runtime.noise import PerImageNoise
from ddpm_runtime.samplers import get_sampler
from ddpm_runtime.schedule import NoiseSchedule
from ddpm_runtime.schedule_fit import DEFAULT_REFERENCE, final_images, fit_timesteps
from ddpm_runtime.timesteps import sampling_timesteps

from .errors import ExportError

# Far from the seeds users sample with (0, 1, ...): the fitting noise is not the noise of the grids it is judged on.
DEFAULT_FIT_SEED = 20_240_601


@dataclass(frozen=True)
class FitReport:
    steps: int
    entry: FittedTimesteps
    seconds: float


def fit_model_file(
    model_path: str | os.PathLike,
    steps_list: list[int],
    sampler: str,
    images: int,
    out: str | os.PathLike | None = None,
    seed: int = DEFAULT_FIT_SEED,
    reference: tuple[str, int] = DEFAULT_REFERENCE,
    threads: int | None = None,
    overwrite: bool = False,
    on_report: Callable[[FitReport], None] | None = None,
    options: dict | None = None,
) -> Path:
    """Fit each step count of ``steps_list`` for ``sampler`` on ``images`` noises and write the model
    (to ``out``, or back to ``model_path``) with the fits in its metadata. Returns the path written.
    ``options``: sampler options to fit for, stored with the times (``{"final": "step"}``)."""
    from ddpm_runtime.onnx_model import load_onnx_model

    model_path = Path(model_path)
    out = Path(out) if out is not None else model_path
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name such as {out / model_path.name}")
    if out != model_path and out.exists() and not overwrite:
        raise ExportError(f"{out}: exists (pass --overwrite to replace it)")
    spec = get_sampler(sampler)  # a UserError for an unknown name
    options = dict(options or {})
    declared = {option.name: option for option in spec.options}
    for name, value in options.items():
        if name not in declared:
            raise ExportError(f"--{name}: {sampler} has no such option")
        complaint = declared[name].check(value) if declared[name].check else None
        if complaint:
            raise ExportError(complaint)
    if images < 8:
        raise ExportError(f"--images must be at least 8, got {images}")
    model = load_onnx_model(model_path, device="cpu", threads=threads)  # every file problem: one line
    metadata = model.metadata
    schedule = NoiseSchedule.from_config(metadata.schedule)
    bad = [s for s in steps_list if not 3 <= s <= schedule.num_timesteps]
    if bad or not steps_list:
        raise ExportError(f"--steps: each count must be 3..{schedule.num_timesteps} (2 or fewer have nothing to fit)")
    image = metadata.image
    x_T = PerImageNoise(seed, 0, images).standard_normal((images, image.channels, image.height, image.width))
    ref_sampler, ref_steps = reference
    reference_x0 = final_images(model, x_T, schedule, ref_sampler, sampling_timesteps(schedule, ref_steps, "logsnr"))
    for steps in steps_list:
        started = time.perf_counter()
        try:
            fitted = fit_timesteps(
                model, schedule, x_T, steps, sampler, reference, reference_x0=reference_x0, options=options
            )
        except ValueError as exc:
            raise ExportError(f"--sampler {sampler}: {exc}") from None
        fit = {
            "error": fitted.error,
            "start_error": fitted.start_error,
            "start_spacing": fitted.start_spacing,
            "reference": f"{ref_sampler}:{ref_steps}",
            "images": images,
            "seed": seed,
        }
        entry = FittedTimesteps(sampler=sampler, timesteps=fitted.timesteps, fit=fit, options=options)
        metadata = metadata.with_fitted(entry)
        if on_report is not None:
            on_report(FitReport(steps, entry, time.perf_counter() - started))
    write_metadata(model_path, out, metadata)
    return out


def write_metadata(source: Path, out: Path, metadata: ModelMetadata) -> None:
    """``source``'s graph and weights with ``metadata`` as its ddpm document, written atomically to ``out``
    (external data files, if any, are referenced as they were: ``out`` must sit in the same folder)."""
    import onnx

    proto = onnx.load(str(source), load_external_data=False)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    if external and out.resolve().parent != source.resolve().parent:
        raise ExportError(f"{out}: a model with external data must be written in its own folder")
    props = {p.key: p.value for p in proto.metadata_props}
    props[contract.METADATA_KEY] = metadata.to_json()
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    data = proto.SerializeToString()
    check_free_space(out, len(data))
    write_atomic(out, lambda handle: handle.write(data))
