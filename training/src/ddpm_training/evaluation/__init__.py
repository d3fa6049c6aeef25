"""Sample quality in the feature spaces of classifiers trained on the labelled real data."""

from .classifier import FeatureClassifier, default_cache_dir, feature_classifier
from .evaluate import (
    DEFAULT_SEED,
    REFERENCE_SPLITS,
    EvalReport,
    check_eval_data,
    check_eval_options,
    evaluate,
    reference_split,
)
from .metrics import DEFAULT_K, fid, frechet_distance, precision_recall

__all__ = [
    "DEFAULT_K",
    "DEFAULT_SEED",
    "REFERENCE_SPLITS",
    "EvalReport",
    "FeatureClassifier",
    "check_eval_data",
    "check_eval_options",
    "default_cache_dir",
    "evaluate",
    "feature_classifier",
    "fid",
    "frechet_distance",
    "precision_recall",
    "reference_split",
]
