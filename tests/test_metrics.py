"""Metric formulas on feature sets with known answers; no network, no Inception."""

import math

import pytest
import torch

from gan_cli.metrics import class_coverage, frechet_distance, inception_score, kernel_distance, precision_recall


def gaussian(n, d, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_frechet_distance_of_identical_sets_is_zero_and_of_a_shift_is_its_square():
    x = gaussian(2000, 8)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # same covariance, means apart by `shift` in every dimension: distance = d * shift^2
    assert frechet_distance(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_scaled_gaussians():
    x = gaussian(4000, 4)
    y = x * 2.0  # mean 2 mu, covariance 4 S: ||mu||^2 + Tr(S + 4S - 2 * 2S) = ||mu||^2 + Tr(S)
    x64 = x.double()
    expected = x64.mean(0).pow(2).sum().item() + torch.cov(x64.T).trace().item()
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-4)


def test_kid_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    a, b = gaussian(1000, 8, seed=1), gaussian(1000, 8, seed=2)
    same, _ = kernel_distance(a, b, subsets=20, subset_size=500)
    shifted, _ = kernel_distance(a, b + 1.0, subsets=20, subset_size=500)
    assert abs(same) < 0.01 and shifted > 10 * max(abs(same), 1e-3)


def test_precision_and_recall_on_partial_overlap():
    real = gaussian(1000, 2)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    collapsed = real[:1].repeat(500, 1) + 1e-4 * gaussian(500, 2, seed=3)  # one mode: precise, no recall
    precision, recall = precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.05
    far = gaussian(1000, 2, shift=20.0, seed=4)
    assert precision_recall(real, far) == (0.0, 0.0)


def test_inception_score_bounds_on_known_logits():
    n, c = 1000, 10
    confident_uniform = torch.full((n, c), -30.0)
    confident_uniform[torch.arange(n), torch.arange(n) % c] = 30.0
    assert inception_score(confident_uniform, splits=1)[0] == pytest.approx(c, rel=1e-3)  # the maximum
    one_class = torch.full((n, c), -30.0)
    one_class[:, 3] = 30.0
    assert inception_score(one_class, splits=1)[0] == pytest.approx(1.0, abs=1e-3)  # mode collapse


def test_class_coverage_entropy_and_covered_classes():
    uniform = torch.eye(10).repeat(50, 1)
    hist, entropy, covered = class_coverage(uniform)
    assert hist == [0.1] * 10 and entropy == pytest.approx(math.log(10)) and covered == 10
    collapsed = torch.eye(10)[[2] * 499 + [5]]
    _, entropy, covered = class_coverage(collapsed)
    assert covered == 1 and entropy < 0.02  # class 5 at 0.2% is under a tenth of the uniform 10%
