"""DCGAN G and D (Radford et al. 2015). Contract: G(z) -> images in [-1, 1], D(x) -> (B,) logits.

Class-conditional (num_classes > 0): G(z, y) sees a learned embedding of the label concatenated to z, and D(x, y)
is a projection discriminator (Miyato & Koyama 2018): its unconditional logit plus <embed(y), phi(x)>, phi(x)
being the features its last layer reads. y: labels (B,), or class weights (B, num_classes) to mix classes.

Both nets work at sizes base * 2^n with base 4 or 7 and n >= 2 (16, 28, 32, 56, 64, ...):
G projects z to a base x base map and doubles it n times; D mirrors that.
"""

import torch
from torch import nn

CLASS_EMBEDDING = 50  # size of G's class embedding, concatenated to z


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

    def __init__(self, latent_dim, channels, image_size, features=64, extra=0, num_classes=0):
        super().__init__()
        base, n = _checked_plan(image_size)
        width = features * 2 ** (n - 1)
        self.embed = nn.Embedding(num_classes, CLASS_EMBEDDING) if num_classes else None
        inputs = latent_dim + (CLASS_EMBEDDING if num_classes else 0)
        # z (B, inputs, 1, 1) -> (B, width, base, base)
        layers = [nn.ConvTranspose2d(inputs, width, base, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True), *_refine(width, extra)]
        for _ in range(n - 1):  # each block: channels / 2, size x 2
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
            layers += _refine(width, extra)
        # (B, features, size/2, size/2) -> (B, channels, size, size)
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z, y=None):  # (B, latent_dim)[, labels] -> (B, C, H, W)
        if self.embed is not None:
            z = torch.cat([z, embedding(self.embed, y).to(z.dtype)], 1)
        return self.net(z[:, :, None, None])


NORMS = ("batch", "spectral", "layer", "none")


class DCGANDiscriminator(nn.Module):
    """norm: "batch" as Radford et al.; "spectral" (Miyato et al. 2018) bounds each layer's Lipschitz constant
    instead, and scores every image on its own, so real and fake can share one forward pass; "layer" normalises
    each image's features on their own (GroupNorm with one group), the critic Gulrajani et al. use with WGAN-GP.
    extra: 3x3 convolutions added after each block but the input layer (0: Radford et al.); on 28x28 MNIST one
    (at 7x7) matched G's extra layers and lifted quality more than any other change (docs/quality.md)."""

    def __init__(self, channels, image_size, features=64, norm="batch", extra=0, num_classes=0):
        super().__init__()
        base, n = _checked_plan(image_size)
        sn = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda layer: layer)

        def block(c_in, c_out, *geometry, normalise=True):  # conv, [batch or layer norm], LeakyReLU
            layers = [sn(nn.Conv2d(c_in, c_out, *geometry, bias=False))]
            if normalise and norm in ("batch", "layer"):
                layers.append(nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(1, c_out))
            return layers + [nn.LeakyReLU(0.2, True)]

        width = features
        layers = block(channels, width, 4, 2, 1, normalise=False)  # no normalisation on D's input (Radford et al.)
        for _ in range(n - 1):  # each block: channels x 2, size / 2
            layers += block(width, width * 2, 4, 2, 1)
            width *= 2
            layers += [layer for _ in range(extra) for layer in block(width, width, 3, 1, 1)]
        # (B, width, base, base) -> (B, 1, 1, 1): a linear function of the features phi(x), as psi in the projection
        layers.append(sn(nn.Conv2d(width, 1, base, 1, 0, bias=False)))
        self.net = nn.Sequential(*layers)
        self.embed = sn(nn.Embedding(num_classes, width * base * base)) if num_classes else None
        self.apply(init_weights)
        if self.embed is not None:  # as D's other layers (G's embedding keeps N(0, 1), the scale of the z it joins)
            normal_weight(self.embed)

    def forward(self, x, y=None):  # (B, C, H, W)[, labels] -> (B,) logits
        if self.embed is None:
            return self.net(x).view(-1)
        phi = self.net[:-1](x)
        projection = (embedding(self.embed, y) * phi.flatten(1)).sum(1)
        return self.net[-1](phi).view(-1) + projection


def embedding(embed, y):
    """The embedding of labels (B,), or the mix of class embeddings that weights (B, num_classes) give."""
    return y.to(embed.weight.dtype) @ embed.weight if y.is_floating_point() else embed(y)


def init_weights(m):
    """N(0, 0.02) for convolutions, N(1, 0.02) for batch-norm scales (Radford et al.)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        normal_weight(m)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def normal_weight(m):
    """N(0, 0.02) weights; a spectrally normalised layer's weight is computed, and its parameter is the original."""
    nn.init.normal_(m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight, 0.0, 0.02)
