"""Every shipped config option composes, passes the schema checks and builds G, D, their optimizers and the loss."""

from importlib.resources import files
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from gan_cli import data, losses, models, schema

CONFIGS = files("gan_cli.configs")
SOLUTION = Path(__file__).resolve().parents[1] / "examples" / "lab" / "solution"
EXTRA = {"data=folder": ["data.path=/nowhere"],  # options with keys of their own to fill in
         "model=custom": ["model.generator._target_=generator.Generator",
                          "model.discriminator._target_=discriminator.Discriminator"]}


def options(group):
    return sorted(p.name.removesuffix(".yaml") for p in CONFIGS.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def test_every_group_ships_options():
    assert "dcgan" in options("model") and "adam" in options("optimizer") and "nonsaturating" in options("loss")
    assert "mnist5k" in options("data") and {"recipe", "ring8", "grid25"} <= set(options("experiment"))


def compose_train(*overrides):
    with initialize_config_module("gan_cli.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def builds(cfg):
    """G and D for the config, one step of each optimizer, and the loss on D's logits."""
    G, D = models.build(cfg.model, cfg.latent_dim, data.sample_shape(cfg.data), num_classes=10)
    opt_g = instantiate(cfg.optimizer.generator)(G.parameters())
    opt_d = instantiate(cfg.optimizer.discriminator)(D.parameters())
    loss = losses.build(cfg.loss)
    y = torch.tensor([3, 7]) if cfg.model.conditional else None
    fake = models.call(G, torch.randn(2, cfg.latent_dim), y)
    assert fake.shape[1:] == data.sample_shape(cfg.data)
    loss_d = loss.d(models.call(D, fake.detach(), y), models.call(D, fake.detach(), y))
    loss_d.backward()
    opt_d.step()
    loss.g(models.call(D, fake, y)).backward()
    opt_g.step()
    assert torch.isfinite(loss_d)


CASES = ([f"model={m}" for m in options("model")] + [f"optimizer={o}" for o in options("optimizer")]
         + [f"loss={lo}" for lo in options("loss")]
         + [f"data={d}" for d in options("data") if d not in ("ring8", "grid25")]
         + [f"+experiment={e}" for e in options("experiment")])


@pytest.mark.parametrize("override", CASES)
def test_each_option_composes_and_builds(override, monkeypatch):
    monkeypatch.syspath_prepend(str(SOLUTION))  # model=custom: the lab's worked answer
    cfg = compose_train(override, *EXTRA.get(override, []))
    schema.check_train(cfg)
    builds(cfg)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_toy_data_with_the_mlp(name):
    cfg = compose_train(f"data={name}", "model=mlp")
    schema.check_train(cfg)
    builds(cfg)
