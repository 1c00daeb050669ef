"""Fully connected G and D (Goodfellow et al. 2014), for any sample shape: images (C, H, W) or 2-D points (2,).

Contract: G(z) -> samples of `shape` in [-1, 1], D(x) -> (B,) logits.
"""

import math

from torch import nn


def _stack(sizes, dropout=0.0):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim, shape, hidden=(256, 512, 1024)):
        super().__init__()
        self.shape = tuple(shape)
        sizes = [latent_dim, *hidden]
        self.net = nn.Sequential(*_stack(sizes), nn.Linear(sizes[-1], math.prod(self.shape)), nn.Tanh())

    def forward(self, z):  # (B, latent_dim) -> (B, *shape)
        return self.net(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, shape, hidden=(1024, 512, 256), dropout=0.3):
        super().__init__()
        sizes = [math.prod(shape), *hidden]
        self.net = nn.Sequential(nn.Flatten(), *_stack(sizes, dropout), nn.Linear(sizes[-1], 1))

    def forward(self, x):  # (B, *shape) -> (B,) logits
        return self.net(x).view(-1)
