"""``ddpm eval`` as a library call: samples + labelled real data -> FID with its floor, precision/recall, classes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import ImageData
from ..errors import TrainingError
from .classifier import FeatureClassifier, default_cache_dir, features_and_predictions, held_out_split
from .metrics import DEFAULT_K, class_histogram, fid, kid, precision_recall

DEFAULT_SEED = 0  # seeds the feature classifier's training and the choice of real subsets
REFERENCE_SPLITS = ("test", "train")
MAX_REFERENCE = 10_000  # reference images when --num-reference is not given (all of Fashion-MNIST's test split)


@dataclass(frozen=True)
class RealSets:
    """Which real images play which part. ``reference`` indexes the reference images (the test split,
    or the labelled data itself); ``floor`` indexes the labelled data: n real images in place of the
    samples; ``pool`` the labelled images outside the reference, in the floor's order (per-class floors)."""

    split: str  # "test" or "train"
    reference_data: ImageData
    reference: np.ndarray
    floor: np.ndarray
    pool: np.ndarray
    floor_unseen: int  # floor images the classifier did not train on


def real_sets(
    n: int, real: ImageData, test: ImageData | None, classifier_seed: int, seed: int, num_reference: int | None
) -> RealSets:
    """Reference and floor images for n samples.

    With a test split: the reference is ``num_reference`` (default: up to MAX_REFERENCE) test images,
    which neither the classifier nor the diffusion model saw; the floor is n training images, those the
    classifier held out first (the rest only when n exceeds them). Without: reference and floor are
    disjoint random parts of the labelled data, as in the tables before the test split was used."""
    rng = np.random.default_rng(seed)
    held_out, trained = held_out_split(real.num_images, classifier_seed)
    unseen = np.zeros(real.num_images, bool)
    unseen[held_out] = True
    if test is not None:
        count = min(MAX_REFERENCE, test.num_images) if num_reference is None else num_reference
        reference = rng.permutation(test.num_images)[:count]
        pool = np.concatenate([rng.permutation(held_out), rng.permutation(trained)])
        floor = pool[:n]
        return RealSets("test", test, reference, floor, pool, int(unseen[floor].sum()))
    order = rng.permutation(real.num_images)
    count = max(n, min(MAX_REFERENCE, real.num_images - n)) if num_reference is None else num_reference
    floor, reference = order[:n], order[n : n + count]
    pool = np.concatenate([floor, order[n + count :]])
    return RealSets("train", real, reference, floor, pool, int(unseen[floor].sum()))


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
    reference_split: str  # "test": the data's test split; "train": the labelled data itself
    reference_source: str
    floor_unseen: int  # of the floor's num_samples real images, those the classifier did not train on
    fid: float  # samples vs reference, in the classifier's features
    fid_floor: float  # n other real images vs the same reference: the best a model can hope for at this n
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


def reference_split(real_path: Path, split: str | None) -> ImageData | None:
    """The test split to measure against (None: the labelled data itself) for ``--reference split``;
    ``split`` None: the test split where the data has one."""
    from ..data import load_test_split

    if split not in (None, *REFERENCE_SPLITS):
        raise TrainingError(f"--reference must be one of {', '.join(REFERENCE_SPLITS)}, got {split!r}")
    if split == "train":
        return None
    test = load_test_split(real_path)
    if test is None and split == "test":
        raise TrainingError(
            f"{real_path}: no labelled test split found (t10k-images-idx3-ubyte[.gz] with its labels beside "
            "the training files, or x_test and y_test in an .npz); use --reference train"
        )
    return test


def check_eval_options(k: int, cache_dir: Path | None) -> Path:
    """Before any work (the classifier trains for a minute): the options make sense and the cache
    folder can be written. Returns the cache folder to use."""
    from ddpm_runtime.files import check_writable_dir

    if k < 1:
        raise TrainingError(f"--k must be at least 1, got {k}")
    return check_writable_dir(cache_dir if cache_dir is not None else default_cache_dir())


def check_eval_data(
    samples: ImageData,
    real: ImageData,
    k: int = DEFAULT_K,
    test: ImageData | None = None,
    num_reference: int | None = None,
) -> None:
    """What evaluate() needs of its inputs, checked before the feature classifier is trained. ``test``:
    the reference comes from this test split."""
    for other in (real, test) if test is not None else (real,):
        if samples.images.shape[1:] != other.images.shape[1:]:
            raise TrainingError(
                f"{samples.source}: samples are {samples.images.shape[1:]} (H, W, C) but the real data "
                f"{other.source} is {other.images.shape[1:]}"
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
    if num_reference is not None and num_reference < 2:
        raise TrainingError(f"--num-reference must be at least 2, got {num_reference}")
    if test is not None:
        if real.num_images < n:
            raise TrainingError(
                f"{real.source}: {real.num_images} real images are too few for the floor of {n} samples"
            )
        if num_reference is not None and num_reference > test.num_images:
            raise TrainingError(
                f"{test.source}: --num-reference {num_reference} is more than the {test.num_images} test images"
            )
        if test.num_images < 2:
            raise TrainingError(f"{test.source}: the test split holds fewer than 2 images")
        return
    if num_reference is not None and real.num_images < n + num_reference:
        raise TrainingError(
            f"{real.source}: {real.num_images} real images are too few for {n} samples and --num-reference "
            f"{num_reference} (need {n + num_reference}: {n} for the floor, {num_reference} as reference)"
        )
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
    test: ImageData | None = None,
    num_reference: int | None = None,
) -> EvalReport:
    """Samples against real images: the reference from ``test`` (the data's test split) when given,
    else from ``real`` itself (real_sets says which images play which part)."""
    check_eval_data(samples, real, k, test, num_reference)
    n = samples.num_images
    sets = real_sets(n, real, test, classifier.seed, seed, num_reference)
    reference_images = sets.reference_data.images[sets.reference]
    sample_feats, sample_preds = features_and_predictions(classifier.model, samples.images)
    floor_feats, _ = features_and_predictions(classifier.model, real.images[sets.floor])
    ref_feats, ref_preds = features_and_predictions(classifier.model, reference_images)
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
        ref_labels = sets.reference_data.labels[sets.reference]
        per_class = _per_class(
            samples.labels, sample_feats, sample_preds, real, ref_labels, ref_feats, sets.pool, classifier
        )
    return EvalReport(
        num_samples=n,
        num_reference=len(sets.reference),
        reference_split=sets.split,
        reference_source=sets.reference_data.source,
        floor_unseen=sets.floor_unseen,
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


def _per_class(labels, sample_feats, sample_preds, real, ref_labels, ref_feats, pool, classifier) -> list[ClassReport]:
    """FID of each requested class against the reference images of that class (by their real labels),
    with a floor from as many other real images of the class; classes with fewer than 2 samples are skipped."""
    reports = []
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
