"""``ddpm train`` as a library call: data + settings -> a run folder. The CLI only parses options."""

from __future__ import annotations

from dataclasses import replace

from ..data import load_images
from .checkpoint import load_checkpoint
from .compute import layout_name, precision_name
from .data_objective import data_trainer
from .distributed import DistInfo, finished_together, init_from_env, shutdown
from .run_folder import RunFolder
from .session import Callbacks, RunSummary, holding, run_compute, run_in_folder
from .settings import TrainRequest, data_limit, resolve_classes, resolve_settings


def run_training(request: TrainRequest, callbacks: Callbacks | None = None) -> RunSummary:
    callbacks = callbacks or Callbacks()
    info, device = init_from_env(request.device, request.deterministic)
    try:
        summary = _run(request, callbacks, info, device)
        finished_together(info)
        return summary
    finally:
        shutdown()


def _run(request: TrainRequest, callbacks: Callbacks, info: DistInfo, device) -> RunSummary:
    checkpoint = load_checkpoint(request.resume) if request.resume else None
    limit = data_limit(request, checkpoint)
    data = load_images(request.data, limit)
    classes = resolve_classes(request, checkpoint, data)
    settings = resolve_settings(request, checkpoint, data.channels, data.image_size, classes)
    folder = RunFolder(settings.folder)
    # Nothing is created until every input is validated; the folder's lock, and under it the check
    # that refuses a folder holding another run, come first.
    with holding(folder, request.resume, info):
        config = settings.train_config
        options = request.train_options  # a library caller may set bf16 / channels_last directly
        precision = precision_name(config.bf16) if "bf16" in options else request.precision
        layout = layout_name(config.channels_last) if "channels_last" in options else request.layout
        compute = run_compute(
            precision, layout, config, checkpoint, settings.model_config, settings.schedule_config, device, info
        )
        train_config = replace(config, bf16=compute.bf16, channels_last=compute.channels_last)
        trainer = data_trainer(
            settings.model_config,
            settings.schedule_config,
            train_config,
            data,
            device=device,
            dist_info=info,
            classes=settings.classes,
        )
        trainer.data_info["limit"] = limit
        trainer.compute = compute
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint, source=str(request.resume))
        return run_in_folder(trainer, folder, checkpoint, request.resume, callbacks, info)


__all__ = ["Callbacks", "RunSummary", "TrainRequest", "run_training"]
