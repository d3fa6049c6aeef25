"""``ddpm eval`` as a library call: samples + labelled real data -> FID with its floor, precision/recall, classes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import ImageData
from ..errors import TrainingError
from .classifier import FeatureClassifier, default_cache_dir, features_and_predictions
from .metrics import DEFAULT_K, class_histogram, fid, kid, precision_recall

DEFAULT_SEED = 0  # seeds the feature classifier's training and the choice of real subsets


@dataclass(frozen=True)
class ClassReport:
    """One requested class of conditional samples (samples.npz "labels")."""

    label: int
    num_samples: int
    agreement: float  # share of these samples the classifier puts in this class
    fid: float  # these samples vs the reference images of this class (by their real labels)
    fid_floor: float | None  # as many real images of this class vs the same reference; None: too few real ones


@dataclass(frozen=True)
class EvalReport:
    num_samples: int
    num_reference: int  # real images the reference statistics come from
    fid: float  # samples vs reference, LeNet features
    fid_floor: float  # n held-out real images vs the same reference: the best a model can hope for at this n
    kid: float  # samples vs reference (metrics.kid): mean over subsets
    kid_std: float  # its standard deviation over the subsets
    kid_floor: float  # the n held-out real images vs the same reference
    kid_floor_std: float
    precision: float
    recall: float
    floor_precision: float
    floor_recall: float
    k: int
    classifier_accuracy: float
    sample_classes: list[float]  # share of samples per predicted class
    real_classes: list[float]  # share of reference images per predicted class
    # Samples with requested labels (conditional models): share whose predicted class is the requested
    # one, to read beside classifier_accuracy (the same classifier on real images), and per class.
    class_agreement: float | None = None
    per_class: list[ClassReport] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_eval_options(k: int, cache_dir: Path | None) -> Path:
    """Before any work (the classifier trains for a minute): the options make sense and the cache
    folder can be written. Returns the cache folder to use."""
    from ddpm_runtime.files import check_writable_dir

    if k < 1:
        raise TrainingError(f"--k must be at least 1, got {k}")
    return check_writable_dir(cache_dir if cache_dir is not None else default_cache_dir())


def check_eval_data(samples: ImageData, real: ImageData, k: int = DEFAULT_K) -> None:
    """What evaluate() needs of its inputs, checked before the feature classifier is trained."""
    if samples.images.shape[1:] != real.images.shape[1:]:
        raise TrainingError(
            f"{samples.source}: samples are {samples.images.shape[1:]} (H, W, C) but the real data "
            f"{real.source} is {real.images.shape[1:]}"
        )
    n = samples.num_images
    if samples.labels is not None and real.labels is not None:
        num_classes = int(real.labels.max()) + 1
        if samples.labels.min() < 0 or samples.labels.max() >= num_classes:
            raise TrainingError(
                f"{samples.source}: requested labels run {int(samples.labels.min())}..{int(samples.labels.max())}, "
                f"but the real data {real.source} has classes 0..{num_classes - 1}"
            )
    if k < 1:
        raise TrainingError(f"--k must be at least 1, got {k}")
    if n <= k:
        raise TrainingError(f"{samples.source}: {n} samples are too few (precision/recall need more than k={k})")
    if real.num_images < 2 * n:
        raise TrainingError(
            f"{real.source}: {real.num_images} real images are too few for {n} samples "
            f"(need {2 * n}: {n} held out for the floor and at least {n} as reference)"
        )


def evaluate(
    samples: ImageData,
    real: ImageData,
    classifier: FeatureClassifier,
    seed: int = DEFAULT_SEED,
    k: int = DEFAULT_K,
    max_reference: int = 10_000,
) -> EvalReport:
    check_eval_data(samples, real, k)
    n = samples.num_images
    order = np.random.default_rng(seed).permutation(real.num_images)
    floor_idx = order[:n]
    reference_idx = order[n : n + max(n, min(max_reference, real.num_images - n))]
    sample_feats, sample_preds = features_and_predictions(classifier.model, samples.images)
    floor_feats, _ = features_and_predictions(classifier.model, real.images[floor_idx])
    ref_feats, ref_preds = features_and_predictions(classifier.model, real.images[reference_idx])
    # Precision/recall compare equal-sized sets, as in the paper (both depend on n): n reference
    # images against each. Known weakness, measured on Fashion-MNIST: one real image of busy texture
    # can have a k-NN ball that holds most uniform-noise images, so noise scored precision 0.5-1.0
    # (recall 0.0) depending on which real images are drawn. Read precision with recall and FID.
    pr_real = ref_feats[:n]
    precision, recall = precision_recall(pr_real, sample_feats, k)
    floor_precision, floor_recall = precision_recall(pr_real, floor_feats, k)
    kid_value, kid_floor = kid(sample_feats, ref_feats, seed=seed), kid(floor_feats, ref_feats, seed=seed)
    agreement, per_class = None, None
    if samples.labels is not None:
        agreement = float(np.mean(sample_preds == samples.labels))
        pool = np.concatenate([floor_idx, order[n + len(reference_idx) :]])  # real images outside the reference
        per_class = _per_class(
            samples.labels, sample_feats, sample_preds, real, reference_idx, ref_feats, pool, classifier
        )
    return EvalReport(
        num_samples=n,
        num_reference=len(reference_idx),
        fid=fid(sample_feats, ref_feats),
        fid_floor=fid(floor_feats, ref_feats),
        kid=kid_value[0],
        kid_std=kid_value[1],
        kid_floor=kid_floor[0],
        kid_floor_std=kid_floor[1],
        precision=precision,
        recall=recall,
        floor_precision=floor_precision,
        floor_recall=floor_recall,
        k=k,
        classifier_accuracy=classifier.accuracy,
        sample_classes=class_histogram(sample_preds, classifier.num_classes).tolist(),
        real_classes=class_histogram(ref_preds, classifier.num_classes).tolist(),
        class_agreement=agreement,
        per_class=per_class,
    )


def _per_class(
    labels, sample_feats, sample_preds, real, reference_idx, ref_feats, pool, classifier
) -> list[ClassReport]:
    """FID of each requested class against the reference images of that class (by their real labels),
    with a floor from as many other real images of the class; classes with fewer than 2 samples are skipped."""
    reports = []
    ref_labels = real.labels[reference_idx]
    pool_labels = real.labels[pool]
    for label in np.unique(labels):
        rows = labels == label
        count = int(rows.sum())
        reference = ref_feats[ref_labels == label]
        if count < 2 or len(reference) < 2:
            continue
        held_out = pool[pool_labels == label][:count]
        floor = None
        if len(held_out) == count:
            floor_feats, _ = features_and_predictions(classifier.model, real.images[held_out])
            floor = fid(floor_feats, reference)
        reports.append(
            ClassReport(
                label=int(label),
                num_samples=count,
                agreement=float(np.mean(sample_preds[rows] == label)),
                fid=fid(sample_feats[rows], reference),
                fid_floor=floor,
            )
        )
    return reports
