"""The gate's classifier: ``ddpm eval``'s CNN, trained on labelled real data (or taken from its cache)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ExportError
from .gate import Classify


def eval_classifier(real: Path, image_shape: tuple[int, ...], on_epoch: Callable[[int, float], None]) -> Classify:
    """The class of each uint8 image [N, H, W, C] in the eyes of ``ddpm eval --real real``'s CNN."""
    from ddpm_training.data import load_images
    from ddpm_training.errors import TrainingError
    from ddpm_training.evaluation import feature_classifier
    from ddpm_training.evaluation.classifier import features_and_predictions

    try:
        data = load_images(real)
        shape = (data.channels, *data.images.shape[1:3])
        if shape != tuple(image_shape):
            raise ExportError(f"{real}: images of shape {shape}, the model draws {tuple(image_shape)}")
        classifier = feature_classifier(data, on_epoch=on_epoch, network="cnn")
    except TrainingError as exc:
        raise ExportError(str(exc)) from None
    return lambda images: features_and_predictions(classifier.model, images)[1]
