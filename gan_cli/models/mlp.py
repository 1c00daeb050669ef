"""Fully connected G and D (Goodfellow et al. 2014), for any sample shape: images (C, H, W) or 2-D points (2,).

Contract: G(z) -> samples of `shape` in [-1, 1], D(x) -> (B,) logits. With num_classes, both also take class
labels y and see them as a one-hot vector concatenated to their input (Mirza & Osindero 2014): G(z, y), D(x, y).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def _stack(sizes, dropout=0.0):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


def one_hot(y, num_classes, dtype):
    """Labels (B,) as one-hot rows; class weights (B, num_classes), e.g. between two classes, pass through."""
    return (y if y.is_floating_point() else F.one_hot(y, num_classes)).to(dtype)


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim, shape, hidden=(256, 512, 1024), num_classes=0):
        super().__init__()
        self.shape, self.num_classes = tuple(shape), num_classes
        sizes = [latent_dim + num_classes, *hidden]
        self.net = nn.Sequential(*_stack(sizes), nn.Linear(sizes[-1], math.prod(self.shape)), nn.Tanh())

    def forward(self, z, y=None):  # (B, latent_dim)[, (B,)] -> (B, *shape)
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z.dtype)], 1)
        return self.net(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, shape, hidden=(1024, 512, 256), dropout=0.3, num_classes=0):
        super().__init__()
        self.num_classes = num_classes
        sizes = [math.prod(shape) + num_classes, *hidden]
        # nn.Flatten is a no-op on the flattened input, kept so the layer keys are those of older checkpoints
        self.net = nn.Sequential(nn.Flatten(), *_stack(sizes, dropout), nn.Linear(sizes[-1], 1))

    def forward(self, x, y=None):  # (B, *shape)[, (B,)] -> (B,) logits
        x = x.flatten(1)
        if self.num_classes:
            x = torch.cat([x, one_hot(y, self.num_classes, x.dtype)], 1)
        return self.net(x).view(-1)
