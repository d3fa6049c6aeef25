"""The quality metrics against closed forms and constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_training.evaluation.metrics import (
    class_histogram,
    fid,
    frechet_distance,
    kid,
    mmd2_unbiased,
    precision_recall,
)


def test_frechet_distance_closed_form():
    # Diagonal Gaussians: ||mu1 - mu2||^2 + sum (s1 + s2 - 2 sqrt(s1 s2)) = sum (sqrt(s1) - sqrt(s2))^2 + ...
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_non_diagonal_is_symmetric_and_zero_on_itself():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    s1, s2 = a @ a.T + np.eye(5), b @ b.T + np.eye(5)
    mu = rng.standard_normal(5)
    assert frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, s1, mu + 1, s2) == pytest.approx(frechet_distance(mu + 1, s2, mu, s1), rel=1e-9)


def test_fid_grows_with_a_mean_shift():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 8))
    y = rng.standard_normal((4000, 8))
    assert fid(x, y) < 0.05
    assert fid(x, y + 2.0) == pytest.approx(8 * 4.0, rel=0.05)  # ||shift||^2 = 8 * 2^2


def test_precision_recall_on_constructed_sets():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [20.0, 0.0]])
    real = np.concatenate([c + rng.standard_normal((300, 2)) for c in centres])
    same = np.concatenate([c + rng.standard_normal((300, 2)) for c in centres])
    one_mode = centres[0] + rng.standard_normal((600, 2))  # mode collapse: half the real data unreached
    far = np.array([100.0, 100.0]) + rng.standard_normal((600, 2))
    p, r = precision_recall(real, same)
    assert p > 0.9 and r > 0.9
    p, r = precision_recall(real, one_mode)
    assert p > 0.9 and 0.4 < r < 0.6
    p, r = precision_recall(real, far)
    assert p == 0.0 and r == 0.0


def test_class_histogram():
    np.testing.assert_allclose(class_histogram(np.array([0, 0, 2, 2, 2, 1]), 4), [2 / 6, 1 / 6, 3 / 6, 0.0])


def reference_mmd2(x, y):
    """The unbiased MMD^2 with k(a, b) = (a . b / d + 1)^3, written out pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


def test_mmd2_against_the_pairwise_sum_written_out():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((7, 3)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(reference_mmd2(x, y), rel=1e-12)
    assert mmd2_unbiased(x, x[::-1]) == pytest.approx(reference_mmd2(x, x), abs=1e-12)


def test_kid_is_zero_within_its_spread_for_one_distribution_and_far_from_it_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    mean, std = kid(a, b)
    assert std > 0 and abs(mean) <= 2 * std  # unbiased: no offset at n = 400
    shifted, spread = kid(a, b + 1.0)
    assert shifted > 10 * spread and shifted > 20 * abs(mean)


def test_kid_subsets_are_half_the_smaller_set():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((10, 2)), rng.standard_normal((1, 2))
    with pytest.raises(ValueError, match="at least 2"):
        kid(a, b)
    assert np.isfinite(kid(a, rng.standard_normal((4, 2)), subsets=3)[0])
