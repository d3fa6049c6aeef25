"""Sample-quality metrics in a feature space, pure NumPy (float64).

- Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6):
  ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)).
- Kernel Inception Distance (Binkowski et al. 2018, section 4.1): the unbiased estimate of the squared
  MMD with the cubic polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged over random subsets of
  both sets; unlike FID it has no bias at small n, and the spread over subsets is its uncertainty.
- Improved precision and recall (Kynkäänniemi et al. 2019, eq. 1-3): each set's manifold is the
  union of balls around its points with radius the distance to the k-th nearest neighbour.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 3  # neighbourhood size of precision/recall, the paper's choice


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) is computed as Tr((S1^(1/2) S2 S1^(1/2))^(1/2)), which has the same eigenvalues
    and stays symmetric positive semi-definite, so no complex parts or scipy are needed."""
    root1 = _sqrtm_psd(sigma1)
    cross = _sqrtm_psd(root1 @ sigma2 @ root1)
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(cross), 0.0))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for every pair of rows, d the feature dimension."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD^2 (Gretton et al. 2012, eq. 3) with ``polynomial_kernel``: the
    within-set means leave out each point paired with itself."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


KID_SUBSETS = 100  # subsets averaged over (torch-fidelity's and clean-fid's choice)
KID_SUBSET_SIZE = 1000  # rows per subset at most (their choice)


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = KID_SUBSETS, seed: int = 0):
    """(mean, standard deviation) of ``mmd2_unbiased`` over ``subsets`` pairs of random subsets, each of
    min(KID_SUBSET_SIZE, half the smaller set) rows drawn without replacement. Half, so that the subsets
    differ and their spread says how much the figure would move with other samples (subsets of all the
    rows would all give the same value)."""
    size = min(KID_SUBSET_SIZE, len(features_a) // 2, len(features_b) // 2)
    if size < 2:
        raise ValueError("KID needs at least 2 feature vectors in each set")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            features_a[rng.choice(len(features_a), size, replace=False)],
            features_b[rng.choice(len(features_b), size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(squared, 0.0, None))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point of the same set."""
    distances = _pairwise(features, features)
    return np.partition(distances, k, axis=1)[:, k]  # the smallest, 0, is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K) -> tuple[float, float]:
    """precision: share of fake points inside the real manifold; recall: share of real points inside the fake one."""
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    cross = _pairwise(fake, real)  # (n_fake, n_real)
    precision = float(np.mean((cross <= real_radii[None, :]).any(axis=1)))
    recall = float(np.mean((fake_radii[None, :] >= cross.T).any(axis=1)))
    return precision, recall


def class_histogram(predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of samples per predicted class (mode collapse shows as a few large bins)."""
    counts = np.bincount(np.asarray(predictions, np.int64), minlength=num_classes)
    return counts / max(counts.sum(), 1)
