"""Open a generator file (``ddpm export-generator``: the sampler inside the graph) and draw with it.

``GeneratorModel.draw(x_T, step_noise, y, guidance_scale)`` maps noise to uint8 images in one session
call. ``generate.generate_batches`` feeds it the noise ddpm-run draws for the plain model file (x_T,
then each step's noise, per image), so the same seed gives the same images from either file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .errors import UserError
from .metadata import ModelMetadata
from .onnx_model import OpenedSession, eps_model_from, open_session
from .row_split import _pool, run_in_calls, shares


@dataclass
class GeneratorModel:
    path: Path
    metadata: ModelMetadata
    provider: str
    session: object
    row_sessions: tuple = ()  # as OnnxEpsModel's: single-threaded sessions that each take a share of the rows

    def draw(
        self,
        x_T: np.ndarray,
        step_noise: np.ndarray | None,
        y: np.ndarray | None = None,
        guidance_scale: float | None = None,
    ) -> np.ndarray:
        """(B, H, W, C) uint8 images from x_T (B, C, H, W), step_noise (draws, B, C, H, W) where the
        sampler draws noise, and for a class-conditional generator the labels and the scale."""
        feeds = self.feeds(x_T, step_noise, y, guidance_scale)
        sessions = self.row_sessions[: len(x_T)]
        if len(sessions) < 2:
            return self.session.run([contract.IMAGES.name], feeds)[0]

        def images(session, rows):
            return session.run([contract.IMAGES.name], _rows(feeds, rows))[0]

        pool = _pool(len(sessions))
        futures = [
            pool.submit(run_in_calls, lambda rows, session=session: images(session, rows), share)
            for session, share in zip(sessions, shares(len(x_T), len(sessions)), strict=True)
        ]
        return np.concatenate([future.result() for future in futures])

    def feeds(self, x_T, step_noise, y, guidance_scale) -> dict[str, np.ndarray]:
        entry, classes = self.metadata.generator, self.metadata.classes
        named = {contract.X_T.name: np.ascontiguousarray(x_T, np.float32)}
        if entry.noise_draws:
            if step_noise is None or len(step_noise) != entry.noise_draws:
                raise ValueError(f"{self.path}: takes {entry.noise_draws} noise draws per image")
            named[contract.STEP_NOISE.name] = np.ascontiguousarray(step_noise, np.float32)
        if classes is not None:
            if y is None:
                y = np.full((len(x_T),), classes.null_index, dtype=np.int64)
            named[contract.Y.name] = np.ascontiguousarray(y, np.int64)
            scale = entry.guidance_scale if guidance_scale is None else guidance_scale
            named[contract.GUIDANCE_SCALE.name] = np.asarray(scale, np.float32)
        elif y is not None:
            raise UserError(f"{self.path}: is an unconditional model; it takes no class labels")
        return named


def _rows(feeds: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The feeds of some rows: x_T and y by their first axis, step_noise by its second, the scale whole."""
    picked = {}
    for name, value in feeds.items():
        if name == contract.STEP_NOISE.name:
            picked[name] = np.ascontiguousarray(value[:, rows])
        elif name == contract.GUIDANCE_SCALE.name:
            picked[name] = value
        else:
            picked[name] = np.ascontiguousarray(value[rows])
    return picked


def load_generator(path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> GeneratorModel:
    """Open and validate a generator file; every problem is a one-line UserError."""
    opened = open_session(path, device, threads)
    if opened.metadata.generator is None:
        raise UserError(f"{opened.path}: is a noise-prediction model, not a generator file (ddpm export-generator)")
    return generator_from(opened)


def generator_from(opened: OpenedSession) -> GeneratorModel:
    check_generator_signature(opened.path, opened.session, opened.metadata)
    return GeneratorModel(opened.path, opened.metadata, opened.provider, opened.session, opened.row_sessions())


def load_model(path: str | os.PathLike, device: str = "auto", threads: int | None = None):
    """An ``OnnxEpsModel`` for a model file, a ``GeneratorModel`` for a generator file."""
    opened = open_session(path, device, threads)
    return generator_from(opened) if opened.metadata.generator is not None else eps_model_from(opened)


def check_generator_signature(path: Path, session, metadata: ModelMetadata) -> None:
    # ONNX Runtime lists an input with an initializer (guidance_scale's default) among the overridable ones
    listed = [*session.get_inputs(), *session.get_overridable_initializers()]
    inputs = {i.name: (i.type, list(i.shape)) for i in listed}
    outputs = {o.name: (o.type, list(o.shape)) for o in session.get_outputs()}
    problems = contract.generator_signature_problems(
        inputs, outputs, metadata.image, metadata.conditional, metadata.generator.noise_draws
    )
    if problems:
        raise UserError(f"{path}: generator does not match its metadata: {'; '.join(problems)}")


def check_generator_request(settings, metadata: ModelMetadata, source: str = "model") -> None:
    """A request of ``ddpm-run sample`` (a ``SamplingSettings``) against a generator's baked-in sampler:
    another sampler, step count, spacing or option value needs the model file it was made from."""
    entry = metadata.generator
    baked = f"{entry.sampler}, {entry.steps} steps" + "".join(f", {k} {v}" for k, v in sorted(entry.options.items()))
    asked = []
    if settings.sampler != entry.sampler:
        asked.append(f"--sampler {settings.sampler}")
    elif settings.resolved_steps(metadata.schedule.num_timesteps) != entry.steps:
        asked.append(f"--steps {settings.resolved_steps(metadata.schedule.num_timesteps)}")
    if settings.spacing is not None:
        asked.append(f"--spacing {settings.spacing}")
    asked += [f"{k} {v}" for k, v in sorted(settings.options.items()) if entry.options.get(k, v) != v]
    if asked:
        raise UserError(
            f"{source}: is a generator file that samples with {baked}, built in; {', '.join(asked)} "
            "needs the model file it was made from"
        )


def draw_batch(model: GeneratorModel, rng, x_T: np.ndarray, labels, guidance_scale: float) -> np.ndarray:
    """One batch's images: the step noise drawn from ``rng`` after x_T, in the order the sampler would."""
    draws = model.metadata.generator.noise_draws
    step_noise = np.stack([rng.standard_normal(x_T.shape) for _ in range(draws)]) if draws else None
    return model.draw(x_T, step_noise, labels, guidance_scale if labels is not None else None)
