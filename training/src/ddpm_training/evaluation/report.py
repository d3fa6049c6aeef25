"""``ddpm eval``'s report as lines of text for people (``EvalReport.to_dict`` is the JSON form)."""

from __future__ import annotations

from .classifier import FeatureClassifier
from .cnn import FeatureCNN
from .evaluate import EvalReport


def report_lines(
    report: EvalReport,
    classifier: FeatureClassifier,
    samples_source,
    real_source,
    num_real: int,
    class_names: tuple[str, ...] | None = None,
) -> list[str]:
    lines: list[str] = []
    origin = "cached" if classifier.from_cache else "trained now"
    lines.append(f"samples:    {report.num_samples} images from {samples_source}")
    lines.append(f"real:       {num_real} labelled images from {real_source} (the classifiers trained on them)")
    if report.reference_split == "test":
        lines.append(
            f"reference:  {report.num_reference} test images from {report.reference_source}, unseen by the classifier"
        )
    else:
        lines.append(f"reference:  {report.num_reference} of the labelled images (--reference train)")
    seen = report.num_samples - report.floor_unseen
    lines.append(
        f"floor:      {report.num_samples} other real images in place of the samples"
        + (f" ({seen} of them seen by the classifier in training)" if seen else ", all held out from the classifier")
    )
    lines.append(
        f"features:   {_name(classifier)} ({origin}: {classifier.cache_path}), held-out accuracy "
        f"{report.classifier_accuracy:.1%}"
    )
    lines.append(f"FID:        {report.fid:.3f}   (floor: {report.fid_floor:.3f})")
    lines.append(
        f"KID x1e3:   {1e3 * report.kid:.2f} +- {1e3 * report.kid_std:.2f}   "
        f"(floor: {1e3 * report.kid_floor:.2f} +- {1e3 * report.kid_floor_std:.2f}; mean +- std over subsets)"
    )
    lines.append(
        f"precision:  {report.precision:.3f}   recall: {report.recall:.3f}   "
        f"(k={report.k}; real vs real: {report.floor_precision:.3f} / {report.floor_recall:.3f})"
    )
    lines.append(
        "classes:    "
        + "  ".join(f"{i}:{100 * s:.0f}%" for i, s in enumerate(report.sample_classes))
        + "   (samples; real: "
        + " ".join(f"{100 * s:.0f}" for s in report.real_classes)
        + ")"
    )
    if report.class_agreement is not None:
        lines.append(
            f"requested:  the classifier agrees with the requested class for {report.class_agreement:.1%} of the "
            f"samples (its accuracy on held-out real images: {report.classifier_accuracy:.1%})"
        )
        names = class_names or ()
        lines.append(f"{'class':>11}  {'name':<14} {'samples':>8} {'agree':>7} {'FID':>8} {'floor':>8}")
        for row in report.per_class:
            floor = "-" if row.fid_floor is None else f"{row.fid_floor:.3f}"
            name = names[row.label] if row.label < len(names) else ""
            lines.append(
                f"{row.label:>11}  {name:<14} {row.num_samples:>8} {row.agreement:>7.1%} {row.fid:>8.3f} {floor:>8}"
            )

    return lines


def secondary_lines(network: str, report: EvalReport, classifier: FeatureClassifier) -> list[str]:
    """The figures in another feature space, in two lines (the LeNet's, for earlier tables)."""
    origin = "cached" if classifier.from_cache else "trained now"
    return [
        f"{_name(classifier)}:      FID {report.fid:.3f} (floor {report.fid_floor:.3f})   KID x1e3 "
        f"{1e3 * report.kid:.2f} +- {1e3 * report.kid_std:.2f} (floor {1e3 * report.kid_floor:.2f} +- "
        f"{1e3 * report.kid_floor_std:.2f})",
        f"            in the {network} features of earlier tables ({origin}, held-out accuracy "
        f"{report.classifier_accuracy:.1%})",
    ]


def _name(classifier: FeatureClassifier) -> str:
    return "CNN" if isinstance(classifier.model, FeatureCNN) else "LeNet"
