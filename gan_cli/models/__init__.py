"""The model registry: the only way nets are built, from a model config's plain values.

Checkpoints store those values. A class path stored in a file (model=custom) is imported only with the
user's consent on the command line (models.custom.require_consent, called before building).
"""

from gan_cli.errors import ConfigError
from gan_cli.models import custom, dcgan
from gan_cli.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_cli.models.mlp import MLPDiscriminator, MLPGenerator

# Keys added to a model after its first release, at the values that build what older checkpoints hold.
ADDED_KEYS = {"dcgan": {"d_norm": "batch", "g_extra": 0, "d_extra": 0}}


def _mlp(m, latent_dim, shape):
    return (MLPGenerator(latent_dim, shape, hidden=list(m["g_hidden"])),
            MLPDiscriminator(shape, hidden=list(m["d_hidden"]), dropout=m["dropout"]))


def _dcgan(m, latent_dim, shape):
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
    return (DCGANGenerator(latent_dim, channels, image_size, m["g_features"], m["g_extra"]),
            DCGANDiscriminator(channels, image_size, m["d_features"], norm, m["d_extra"]))


MODELS = {"mlp": _mlp, "dcgan": _dcgan, "custom": lambda m, latent_dim, shape: custom.build(m, latent_dim, shape)}


def with_added_keys(model_cfg):
    """A model config as a dict, with keys that older checkpoints lack at the values those versions built."""
    model = dict(model_cfg)
    return {**ADDED_KEYS.get(model.get("name"), {}), **model}


def generator(model_cfg, latent_dim, shape):
    """G alone (gan-sample, gan-eval): a custom D's class is never imported for sampling."""
    if model_cfg["name"] == "custom":
        return custom.build(model_cfg, latent_dim, tuple(shape), nets=("generator",))[0]
    return build(model_cfg, latent_dim, shape)[0]


def build(model_cfg, latent_dim, shape):
    """(G, D) for a model config (a DictConfig or the plain dict stored in a checkpoint) and a sample shape:
    (C, H, W) for images, (2,) for points."""
    name = model_cfg["name"]
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](with_added_keys(model_cfg), latent_dim, tuple(shape))
