"""Lab 1, a worked answer: a fully connected Generator, as in Goodfellow et al. (2014)."""

from torch import nn


class Generator(nn.Module):
    def __init__(self, latent_dim, channels, image_size, hidden=(256, 512, 1024)):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        sizes = [latent_dim, *hidden]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        # the last layer makes every pixel; tanh puts it in [-1, 1], the range of the training images
        layers += [nn.Linear(sizes[-1], channels * image_size * image_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):  # (m, latent_dim) -> (m, channels, image_size, image_size)
        return self.net(z).view(-1, *self.shape)
