"""Sample quality in the feature space of a LeNet classifier trained on the labelled real data."""

from .classifier import FeatureClassifier, default_cache_dir, feature_classifier
from .evaluate import DEFAULT_SEED, EvalReport, check_eval_data, check_eval_options, evaluate
from .metrics import DEFAULT_K, fid, frechet_distance, precision_recall

__all__ = [
    "DEFAULT_K",
    "DEFAULT_SEED",
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
]
