"""Lab 2: build the Discriminator.

D takes a batch of images, shape (m, channels, image_size, image_size), and returns one number per image,
shape (m, 1) or (m,): near 1 for a real image and near 0 for a fake one, if it ends in a sigmoid, as the
lecture draws it. (It may also return the raw score before the sigmoid, a logit; gan-cli tells which.)

Check your work:   gan-lab check discriminator examples/lab/discriminator.py
"""

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, latent_dim, channels, image_size):
        super().__init__()
        n_pixels = channels * image_size * image_size
        # TODO: flatten each image to n_pixels numbers, then a stack of layers down to ONE number, for example
        #   Linear(n_pixels, 512) -> LeakyReLU(0.2) -> Linear(512, 256) -> LeakyReLU(0.2) -> Linear(256, 1)
        # and a last activation that turns that number into a probability in [0, 1].
        self.net = None

    def forward(self, x):
        # TODO: run x through self.net; return shape (m, 1) or (m,).
        raise NotImplementedError("Lab 2: write Discriminator.forward")
