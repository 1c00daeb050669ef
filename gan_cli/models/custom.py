"""model=custom: the user's own G and D classes, named by Hydra `_target_` paths.

Importing a class runs its module's code. Named on the command line, that is the user's choice. Named in a
file (a checkpoint), it is imported only when the user names the same path again or passes trust_code=true.
"""

import inspect
import os
import sys

from omegaconf import DictConfig, OmegaConf

from gan_cli.errors import ConfigError

NETS = ("generator", "discriminator")


def target(model_cfg, net):
    return model_cfg[net]["_target_"]


def require_consent(model_cfg, nets, named, trust, source, for_sampling=False):
    """Refuse, naming the module and how to allow it, to import a class path that `source` (a file) names,
    unless the user named the same path (`named`: {net: path} from the command line) or trusts the file."""
    if model_cfg.get("name") != "custom" or trust:
        return
    for net in nets:
        path = target(model_cfg, net)
        if named.get(net) != path:
            allow = (f"generator={path}" if for_sampling else "model=custom " + " ".join(
                f"model.{n}._target_={target(model_cfg, n)}" for n in nets))
            raise ConfigError(f"{source} was trained with model=custom and names the {net} class {path}: importing "
                              f"it runs the code of module {path.rsplit('.', 1)[0]!r}. Allow it with {allow} "
                              "(or trust_code=true)")


def build(model_cfg, latent_dim, shape, num_classes=0, nets=NETS):
    """The user's nets, each constructed with latent_dim, channels, image_size (and num_classes, for a
    conditional model) and its extra config keys."""
    if len(shape) != 3:
        raise ConfigError("model=custom makes images; the 2-D toy data needs model=mlp")
    sizes = {"latent_dim": latent_dim, "channels": shape[0], "image_size": shape[-1]}
    if num_classes:
        sizes["num_classes"] = num_classes
    return tuple(construct(model_cfg[net], f"model.{net}", sizes) for net in nets)


def load_class(path, key):
    """The class at a dotted path, importable from the current folder, as Hydra's _target_ is."""
    from hydra.utils import get_class

    if os.getcwd() not in sys.path:  # console scripts do not put the current folder on sys.path
        sys.path.insert(0, os.getcwd())
    try:
        return get_class(path)
    except Exception as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{key}._target_={path} cannot be imported ({reason}); name a class as module.Class, "
                          "with the module's folder as the current folder") from None


def construct(node, key, sizes):
    node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    path = node.pop("_target_")
    cls = load_class(path, key)
    kwargs = {**node, **sizes}
    try:
        return cls(**kwargs)
    except TypeError as e:
        wants = _parameters(cls)
        raise ConfigError(f"{path}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {e}. gan-cli passes "
                          f"latent_dim, channels, image_size{', num_classes' if 'num_classes' in sizes else ''} "
                          f"and the keys under {key}; its constructor takes "
                          f"({wants})") from None
    except Exception as e:
        raise ConfigError(f"{path}(...) raised {type(e).__name__}: {e}") from None


def _parameters(cls):
    try:
        return ", ".join(p for p in inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return "?"
