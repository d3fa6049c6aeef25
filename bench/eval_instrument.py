"""What `ddpm eval` says about images whose quality is known: real images the classifiers never saw,
the same with a little noise, blurred, and uniform noise, in both feature spaces against the test
split (docs/evaluation.md's table). Not a test; tests/training/test_eval.py checks the order.

    python bench/eval_instrument.py --real /usr/share/datasets/fashion-mnist [--num-images 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ddpm_training.data import ImageData, load_images
from ddpm_training.evaluation import evaluate, feature_classifier, reference_split
from ddpm_training.evaluation.classifier import NETWORKS, held_out_split


def blur(images: np.ndarray) -> np.ndarray:
    """A 5-tap binomial filter along both image axes."""
    kernel = np.array([1, 4, 6, 4, 1.0]) / 16
    out = images.astype(np.float64)
    for axis in (1, 2):
        out = sum(w * np.roll(out, shift, axis=axis) for w, shift in zip(kernel, range(-2, 3), strict=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=1000)
    args = parser.parse_args()
    real = load_images(args.real)
    test = reference_split(args.real, "test")
    classifiers = {network: feature_classifier(real, network=network) for network in NETWORKS}
    # Real images neither classifier trained on (some may also be among the floor's: each set is measured
    # against the test split, not against the other).
    held_out, _ = held_out_split(real.num_images, classifiers["cnn"].seed)
    unseen = real.images[np.sort(held_out)[-args.num_images :]].astype(np.float64)
    rng = np.random.default_rng(0)
    cases = {
        "real training images the classifiers held out": unseen,
        "the same + Gaussian noise (sigma 8 of 255)": unseen + rng.normal(0, 8, unseen.shape),
        "the same, blurred (5-tap binomial)": blur(unseen),
        "uniform noise": rng.uniform(0, 255, unseen.shape),
    }
    print("| images | CNN FID | CNN KID x1e3 | CNN precision / recall | LeNet FID |")
    print("|---|---|---|---|---|")
    floor = None
    for name, array in cases.items():
        data = ImageData(np.rint(np.clip(array, 0, 255)).astype(np.uint8), None, name)
        cnn, lenet = (evaluate(data, real, classifiers[n], test=test) for n in NETWORKS)
        floor = cnn, lenet
        print(
            f"| {name} | {cnn.fid:.2f} | {1e3 * cnn.kid:.1f} +- {1e3 * cnn.kid_std:.1f} | "
            f"{cnn.precision:.2f} / {cnn.recall:.2f} | {lenet.fid:.2f} |",
            flush=True,
        )
    cnn, lenet = floor
    print(
        f"\nfloor ({args.num_images} other held-out training images): CNN FID {cnn.fid_floor:.2f}, KID x1e3 "
        f"{1e3 * cnn.kid_floor:.1f} +- {1e3 * cnn.kid_floor_std:.1f}, precision / recall "
        f"{cnn.floor_precision:.2f} / {cnn.floor_recall:.2f}; LeNet FID {lenet.fid_floor:.2f}"
    )


if __name__ == "__main__":
    main()
