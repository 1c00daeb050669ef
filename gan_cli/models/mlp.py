"""Fully connected G and D (Goodfellow et al. 2014). Contract: G(z) -> images in [-1, 1], D(x) -> (B,) logits."""

import math

import torch
from torch import nn


class Dropout(nn.Dropout):
    """nn.Dropout with its mask drawn as uniform >= p: the same distribution (zero with probability p, the
    rest scaled by 1 / (1 - p)) in half the time on the CPU, where bernoulli_ costs ~25 ns an element and
    uniform draws ~10 (README "Speed"). Same state_dict (it has none) as nn.Dropout."""

    def forward(self, x):
        if not self.training or not self.p:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep * (1 / (1 - self.p))


def _stack(sizes, dropout=0.0):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        if dropout:
            layers.append(Dropout(dropout))
    return layers


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim, channels, image_size, hidden=(256, 512, 1024)):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        sizes = [latent_dim, *hidden]
        self.net = nn.Sequential(*_stack(sizes), nn.Linear(sizes[-1], math.prod(self.shape)), nn.Tanh())

    def forward(self, z):  # (B, latent_dim) -> (B, C, H, W)
        return self.net(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, channels, image_size, hidden=(1024, 512, 256), dropout=0.3):
        super().__init__()
        sizes = [channels * image_size * image_size, *hidden]
        self.net = nn.Sequential(nn.Flatten(), *_stack(sizes, dropout), nn.Linear(sizes[-1], 1))

    def forward(self, x):  # (B, C, H, W) -> (B,) logits
        return self.net(x).view(-1)
