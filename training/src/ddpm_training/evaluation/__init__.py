"""Sample quality in the feature space of a LeNet classifier trained on the labelled real data."""

from .classifier import FeatureClassifier, default_cache_dir, feature_classifier
from .evaluate import DEFAULT_SEED, EvalReport, evaluate
from .metrics import DEFAULT_K, fid, frechet_distance, precision_recall

__all__ = [
    "DEFAULT_K",
    "DEFAULT_SEED",
    "EvalReport",
    "FeatureClassifier",
    "default_cache_dir",
    "evaluate",
    "feature_classifier",
    "fid",
    "frechet_distance",
    "precision_recall",
]
