"""2-D toy data, the mode-collapse benchmarks (Metz et al. 2017; Srivastava et al. 2017): samples are points
(N, 2) in [-1, 1], not images, and the true modes are known, so coverage is measured exactly."""

import math

import torch

from gan_cli import metrics

POINTS_PER_SPLIT = {True: 50_000, False: 10_000}


def _ring8():
    """8 Gaussians on a circle: radius 2, std 0.02, scaled by 1/2.5 into tanh's range."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    return torch.stack([angles.cos(), angles.sin()], 1) * 0.8, 0.02 / 2.5


def _grid25():
    """25 Gaussians on a 5x5 grid at -4, -2, 0, 2, 4 (std 0.05), scaled by 1/5 into tanh's range."""
    ticks = torch.linspace(-0.8, 0.8, 5)
    return torch.cartesian_prod(ticks, ticks), 0.05 / 5


DATASETS = {"ring8": _ring8, "grid25": _grid25}
SHAPE = (2,)


def is_toy(cfg_data):
    return cfg_data["name"] in DATASETS


def modes(name):
    """(mode centres (K, 2), standard deviation) of a toy dataset."""
    return DATASETS[name]()


def points(name, train=True):
    """(points (N, 2), mode labels (N,)): fixed samples, the same every run."""
    centres, std = modes(name)
    gen = torch.Generator().manual_seed(0 if train else 1)
    labels = torch.randint(len(centres), (POINTS_PER_SPLIT[train],), generator=gen)
    return centres[labels] + std * torch.randn(len(labels), 2, generator=gen), labels


class PointsEvaluator:
    """Mode coverage and sample quality of G's points against the known modes."""

    def __init__(self, name, dev, n, seed):
        self.centres, self.std = modes(name)
        self.n, self.seed, self.device = n, seed, dev

    @torch.no_grad()
    def __call__(self, G, latent_dim, num_classes=None):  # the points have no classes: G is never conditional
        from gan_cli.board import generate

        z = torch.randn(self.n, latent_dim, generator=torch.Generator().manual_seed(self.seed))
        return metrics.mode_metrics(generate(G, z.to(self.device)).cpu(), self.centres, self.std)
