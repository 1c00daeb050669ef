"""Lab 1: build the Generator.

G takes a batch of noise vectors z, shape (m, latent_dim), and returns a batch of images,
shape (m, channels, image_size, image_size), with every pixel in [-1, 1] (the range the training images
are scaled to).

Check your work:   gan-lab check generator examples/lab/generator.py
"""

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, latent_dim, channels, image_size):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        n_pixels = channels * image_size * image_size
        # TODO: a stack of layers from latent_dim numbers to n_pixels numbers, for example
        #   Linear(latent_dim, 256) -> LeakyReLU(0.2) -> Linear(256, 512) -> LeakyReLU(0.2) -> Linear(512, n_pixels)
        # and a last activation that squashes every value into [-1, 1].
        self.net = None

    def forward(self, z):
        # TODO: run z through self.net, then reshape the (m, n_pixels) result to (m, *self.shape).
        raise NotImplementedError("Lab 1: write Generator.forward")
