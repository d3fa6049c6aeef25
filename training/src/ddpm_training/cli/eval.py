"""`ddpm eval`: measure samples against labelled real data."""

from __future__ import annotations

from pathlib import Path

import click

from ..evaluation import DEFAULT_K, DEFAULT_SEED, REFERENCE_SPLITS


@click.command("eval")
@click.argument("samples", type=click.Path(path_type=Path))
@click.option(
    "--real",
    "real",
    type=click.Path(path_type=Path),
    required=True,
    help="Labelled real data, in any format `ddpm train` reads (its labels train the feature classifier).",
)
@click.option(
    "--reference",
    "reference",
    type=click.Choice(REFERENCE_SPLITS),
    default=None,
    help="Real images to measure against: the data's test split (images neither the classifier nor a model "
    "trained on the data has seen), or the labelled data itself.  [default: test where the data has one, else train]",
)
@click.option(
    "--num-reference",
    type=int,
    default=None,
    help="Reference images for the statistics.  [default: the whole test split, up to 10,000; with --reference "
    "train, up to 10,000 besides the floor's]",
)
@click.option(
    "--k", type=int, default=DEFAULT_K, show_default=True, help="Neighbourhood size for precision and recall."
)
@click.option(
    "--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the classifier and of the real subsets."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where trained classifiers are kept.  [default: $DDPM_ONNX_CACHE or ~/.cache/ddpm-onnx]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_command(samples, real, reference, num_reference, k, seed, cache_dir, as_json) -> None:
    """Measure SAMPLES (samples.npz, a PNG folder, or the seed's CSV) against labelled real data.

    FID and KID in the features of two classifiers trained on the real data (a CNN, the headline, and
    the LeNet of earlier tables; each cached by the data's fingerprint), each with the floor of as many
    real images against the same reference, precision and recall (Kynkäänniemi et al. 2019) and the
    class histogram of the samples. Samples drawn with --class (samples.npz holds their labels): how
    often the classifier agrees with the requested class, and FID per class against the real images of
    that class.
    """
    import json

    from ..data import load_images
    from ..evaluation import check_eval_data, check_eval_options, evaluate, feature_classifier, reference_split
    from ..evaluation.classifier import NETWORKS
    from ..evaluation.report import report_lines, secondary_lines

    cache_dir = check_eval_options(k, cache_dir)
    sample_data, real_data = load_images(samples), load_images(real)
    test_data = reference_split(real, reference)
    check_eval_data(sample_data, real_data, k, test_data, num_reference)
    classifiers, reports = {}, {}
    for network in NETWORKS:  # the headline first, then the LeNet of earlier tables

        def on_epoch(epoch, accuracy, network=network):
            message = f"training feature classifier ({network}): epoch {epoch}, held-out accuracy {accuracy:.1%}"
            click.echo(message, err=True)

        classifiers[network] = feature_classifier(real_data, cache_dir, seed, on_epoch=on_epoch, network=network)
        reports[network] = evaluate(
            sample_data, real_data, classifiers[network], seed=seed, k=k, test=test_data, num_reference=num_reference
        )
    headline, *others = NETWORKS
    if as_json:
        document = {
            **reports[headline].to_dict(),
            "feature_network": headline,
            "samples": str(samples),
            "real": str(real),
            "classifier_cache": str(classifiers[headline].cache_path),
        }
        for network in others:
            document[network] = {**reports[network].to_dict(), "classifier_cache": str(classifiers[network].cache_path)}
        click.echo(json.dumps(document, indent=2))
        return
    lines = report_lines(
        reports[headline], classifiers[headline], samples, real, real_data.num_images, sample_data.class_names
    )
    for network in others:
        lines += secondary_lines(network, reports[network], classifiers[network])
    click.echo("\n".join(lines))
