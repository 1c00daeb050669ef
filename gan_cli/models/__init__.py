"""The model registry: the only way nets are built, from a model config's plain values.

Checkpoints store those values. A class path stored in a file (model=custom) is imported only with the
user's consent on the command line (models.custom.require_consent, called before building).
"""

from gan_cli.errors import ConfigError
from gan_cli.models import custom, dcgan
from gan_cli.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.models.mlp import MLPDiscriminator, MLPGenerator

# Keys added to a model after its first release, at the values that build what older checkpoints hold:
# every model's, and each model's own.
ADDED_TO_ALL = {"conditional": False}
ADDED_KEYS = {"dcgan": {"d_norm": "batch", "g_extra": 0, "d_extra": 0}}


def _mlp(m, latent_dim, shape, num_classes):
    return (MLPGenerator(latent_dim, shape, hidden=list(m["g_hidden"]), num_classes=num_classes),
            MLPDiscriminator(shape, hidden=list(m["d_hidden"]), dropout=m["dropout"], num_classes=num_classes))


def _dcgan(m, latent_dim, shape, num_classes):
    if len(shape) != 3:
        raise ConfigError("model=dcgan makes images; the 2-D toy data needs model=mlp (or +experiment=ring8)")
    channels, image_size = shape[0], shape[-1]
    if dcgan.plan(image_size) is None:
        raise ConfigError(f"model=dcgan cannot make {image_size}x{image_size} images; use data.image_size=28, 32 or 64 "
                          "(any 4*2^n or 7*2^n >= 16), or model=mlp")
    norm = m["d_norm"]
    if norm not in dcgan.NORMS:
        raise ConfigError(f"model.d_norm must be one of {', '.join(dcgan.NORMS)}, got {norm!r}")
    for key, net in (("g_extra", "G"), ("d_extra", "D")):
        if not isinstance(m[key], int) or m[key] < 0:
            raise ConfigError(f"model.{key} must be a whole number >= 0 (extra 3x3 convolutions per {net} block), "
                              f"got {m[key]!r}")
    return (DCGANGenerator(latent_dim, channels, image_size, m["g_features"], m["g_extra"], num_classes),
            DCGANDiscriminator(channels, image_size, m["d_features"], norm, m["d_extra"], num_classes))


MODELS = {"mlp": _mlp, "dcgan": _dcgan, "custom": custom.build}


def with_added_keys(model_cfg):
    """A model config as a dict, with keys that older checkpoints lack at the values those versions built."""
    model = dict(model_cfg)
    return {**ADDED_TO_ALL, **ADDED_KEYS.get(model.get("name"), {}), **model}


def generator(model_cfg, latent_dim, shape, num_classes=None):
    """G alone (gan-sample, gan-eval): a custom D's class is never imported for sampling."""
    if model_cfg["name"] == "custom":
        model = with_added_keys(model_cfg)
        return custom.build(model, latent_dim, tuple(shape), _classes(model, num_classes), nets=("generator",))[0]
    return build(model_cfg, latent_dim, shape, num_classes)[0]


def call(net, x, y=None):
    """net(x), or net(x, y) with the labels of a conditional model."""
    return net(x) if y is None else net(x, y)


def _classes(model, num_classes):
    """How many classes the nets take: 0 for an unconditional model."""
    if model["conditional"] and not num_classes:
        raise ConfigError("model.conditional=true needs class labels, and this data has none; train it on labeled "
                          "data (mnist5k, mnist, fashion_mnist, cifar10, folder) or drop model.conditional")
    return num_classes if model["conditional"] else 0


def build(model_cfg, latent_dim, shape, num_classes=None):
    """(G, D) for a model config (a DictConfig or the plain dict stored in a checkpoint) and a sample shape:
    (C, H, W) for images, (2,) for points. A conditional model (model.conditional) takes labels in
    range(num_classes), which the data decides."""
    name = model_cfg["name"]
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    model = with_added_keys(model_cfg)
    return MODELS[name](model, latent_dim, tuple(shape), _classes(model, num_classes))
