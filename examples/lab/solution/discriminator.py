"""Lab 2, a worked answer: a fully connected Discriminator that ends in a sigmoid, as the lecture draws it.

gan-cli sees the sigmoid (model.d_output=auto) and computes the losses from the logit of D's output.
"""

from torch import nn


class Discriminator(nn.Module):
    def __init__(self, latent_dim, channels, image_size, hidden=(512, 256)):
        super().__init__()
        sizes = [channels * image_size * image_size, *hidden]
        layers = [nn.Flatten()]
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        layers += [nn.Linear(sizes[-1], 1), nn.Sigmoid()]  # one number per image: the probability it is real
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (m, channels, image_size, image_size) -> (m, 1)
        return self.net(x)
