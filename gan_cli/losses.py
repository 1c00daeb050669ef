"""GAN losses as pure functions of D's logits (Goodfellow et al. 2014, eq. 1 and section 3).

With D(x) = sigmoid(l):  log D(x) = -softplus(-l)  and  log(1 - D(x)) = -softplus(l).
softplus is exact and finite at any logit, where log(sigmoid(l)) by hand is -inf past l ~ -100.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_cli.errors import ConfigError


def d_loss(real_logits, fake_logits):
    """D maximises mean log D(x) + mean log(1 - D(G(z))); we minimise the negative."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_saturating(fake_logits):
    """G minimises mean log(1 - D(G(z))) = -softplus(l). Its gradient, -sigmoid(l), vanishes as D(G(z)) -> 0."""
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits):
    """G minimises mean -log D(G(z)) = softplus(-l). Gradient -(1 - sigmoid(l)) -> -1 as D(G(z)) -> 0."""
    return F.softplus(-fake_logits).mean()


PROBABILITY_EPS = 1e-6


def logits_from_probabilities(p):
    """For a D that ends in a sigmoid, as the lecture draws it: l = log(p / (1 - p)), so the losses above apply.
    p is clamped to [eps, 1 - eps] first (torch.logit's eps): a saturated sigmoid (p = 1.0 in float32 from
    l ~ 17 on) gives a finite logit of about +-13.8 instead of +-inf."""
    return torch.logit(p, eps=PROBABILITY_EPS)


@dataclass(frozen=True)
class GANLoss:
    name: str
    g: callable
    d: callable = d_loss


LOSSES = {
    "saturating": GANLoss("saturating", g_loss_saturating),
    "nonsaturating": GANLoss("nonsaturating", g_loss_nonsaturating),
}


def build(loss_cfg):
    name = loss_cfg["name"]
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
