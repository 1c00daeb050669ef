"""DCGAN G and D (Radford et al. 2015). Contract: G(z) -> images in [-1, 1], D(x) -> (B,) logits.

Both nets work at sizes base * 2^n with base 4 or 7 and n >= 2 (16, 28, 32, 56, 64, ...):
G projects z to a base x base map and doubles it n times; D mirrors that.
"""

from torch import nn


def plan(image_size):
    """(base, n_doublings) for a size DCGAN can make, or None."""
    n, size = 0, image_size
    while size % 2 == 0 and size > 7:
        size, n = size // 2, n + 1
    return (size, n) if size in (4, 7) and n >= 2 else None


def _checked_plan(image_size):
    p = plan(image_size)
    if p is None:
        raise ValueError(f"DCGAN cannot make {image_size}x{image_size} images")
    return p


def _refine(width, extra):
    """`extra` 3x3 convolutions at the current size and width, each with batch norm and ReLU."""
    return [layer for _ in range(extra)
            for layer in (nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True))]


class DCGANGenerator(nn.Module):
    """extra: 3x3 convolutions added after each hidden block (0: Radford et al.). On 28x28 MNIST one each made
    sharper digits at equal steps (docs/quality.md); with 0 the layer keys are those of older versions."""

    def __init__(self, latent_dim, channels, image_size, features=64, extra=0):
        super().__init__()
        base, n = _checked_plan(image_size)
        width = features * 2 ** (n - 1)
        # z (B, latent_dim, 1, 1) -> (B, width, base, base)
        layers = [nn.ConvTranspose2d(latent_dim, width, base, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True), *_refine(width, extra)]
        for _ in range(n - 1):  # each block: channels / 2, size x 2
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
            layers += _refine(width, extra)
        # (B, features, size/2, size/2) -> (B, channels, size, size)
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z):  # (B, latent_dim) -> (B, C, H, W)
        return self.net(z[:, :, None, None])


NORMS = ("batch", "spectral", "none")


class DCGANDiscriminator(nn.Module):
    """norm: "batch" as Radford et al.; "spectral" (Miyato et al. 2018) bounds each layer's Lipschitz constant
    instead, and scores every image on its own, so real and fake can share one forward pass.
    extra: 3x3 convolutions added after each block but the input layer (0: Radford et al.); on 28x28 MNIST one
    (at 7x7) matched G's extra layers and lifted quality more than any other change (docs/quality.md)."""

    def __init__(self, channels, image_size, features=64, norm="batch", extra=0):
        super().__init__()
        base, n = _checked_plan(image_size)
        sn = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda layer: layer)

        def block(c_in, c_out, *geometry, batch_norm=norm == "batch"):  # conv, [batch norm], LeakyReLU
            layers = [sn(nn.Conv2d(c_in, c_out, *geometry, bias=False))]
            return layers + ([nn.BatchNorm2d(c_out)] if batch_norm else []) + [nn.LeakyReLU(0.2, True)]

        width = features
        layers = block(channels, width, 4, 2, 1, batch_norm=False)  # no batch norm on D's input (Radford et al.)
        for _ in range(n - 1):  # each block: channels x 2, size / 2
            layers += block(width, width * 2, 4, 2, 1)
            width *= 2
            layers += [layer for _ in range(extra) for layer in block(width, width, 3, 1, 1)]
        # (B, width, base, base) -> (B, 1, 1, 1)
        layers.append(sn(nn.Conv2d(width, 1, base, 1, 0, bias=False)))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x):  # (B, C, H, W) -> (B,) logits
        return self.net(x).view(-1)


def init_weights(m):
    """N(0, 0.02) for convolutions, N(1, 0.02) for batch-norm scales (Radford et al.)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        # a spectrally normalised conv's weight is computed; its parameter is the original
        nn.init.normal_(m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
